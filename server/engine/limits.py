"""Pre-trade limits: what a run may ask for beyond being well formed, checked before anything is
written or sent, so a run that breaks one is refused whole.

- per mode: largest quantity of one order, most orders in one run;
- symbols: an allowlist (only these) and a denylist (never these), both modes;
- live runs carry the explicit confirmation (`confirm_live == "LIVE"`) unless switched off;
- per caller: runs started in the last minute; all callers: runs still RUNNING.

Validation (`validation.py`) says whether a request is an order at all (INVALID_ARGUMENT); these
say whether this gateway lets it trade (FAILED_PRECONDITION, or RESOURCE_EXHAUSTED for the two
counts, which pass again later).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Mapping, Sized
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TypeVar

from execgw.server.engine.validation import RunRequest

log = logging.getLogger(__name__)

LIVE_CONFIRMATION = "LIVE"
RATE_WINDOW_SECONDS = 60.0

Recorded = TypeVar("Recorded")


def symbol_key(symbol: str) -> str:
    """A symbol as the lists compare it: upper case, runs of spaces as one. Validation strips and
    upper-cases an order's symbol but keeps inner spaces, so "BRK  B" passed a denylist holding
    "BRK B" and went to IB as written."""
    return " ".join(symbol.split()).upper()


@dataclass(frozen=True)
class ModeLimits:
    max_order_quantity: float | None = None  # None: only validation's max_order_quantity
    max_orders_per_run: int | None = None  # None: only validation's max_orders_per_run


@dataclass(frozen=True)
class PreTradeLimits:
    per_mode: Mapping[str, ModeLimits] = field(default_factory=dict)
    symbol_allowlist: Collection[str] = ()  # empty: any symbol not denied
    symbol_denylist: Collection[str] = ()
    live_requires_confirmation: bool = True
    max_runs_per_minute_per_caller: int | None = None
    max_open_runs: int | None = None


@dataclass(frozen=True)
class Breach:
    subject: str  # the request's field: "orders[2].symbol", "confirm_live", or the limit itself
    limit: str  # the setting that refuses it
    description: str


class LimitBreached(Exception):
    """A run refused by the pre-trade limits; `exhausted` when it may pass later unchanged."""

    def __init__(self, breaches: list[Breach], exhausted: bool = False) -> None:
        super().__init__("; ".join(f"{b.subject}: {b.description}" for b in breaches))
        self.breaches = breaches
        self.exhausted = exhausted


def breaches_of(request: RunRequest, confirm_live: str, limits: PreTradeLimits) -> list[Breach]:
    """Every limit the run breaks that does not depend on other runs."""
    breaches: list[Breach] = []
    if request.mode == "live" and limits.live_requires_confirmation and confirm_live != LIVE_CONFIRMATION:
        breaches.append(Breach("confirm_live", "live_requires_confirmation",
                               f'live runs must carry confirm_live = "{LIVE_CONFIRMATION}"; this gateway trades '
                               "real money on live and a client meant for paper never sets it"))
    if request.mode != "live" and confirm_live:
        breaches.append(Breach("confirm_live", "confirm_live",
                               f"set on a {request.mode} run: it is for live runs only (a client that confirms "
                               "every run confirms nothing)"))
    mode_limits = limits.per_mode.get(request.mode, ModeLimits())
    allowed = {symbol_key(s) for s in limits.symbol_allowlist}
    denied = {symbol_key(s) for s in limits.symbol_denylist}
    if mode_limits.max_orders_per_run is not None and len(request.orders) > mode_limits.max_orders_per_run:
        breaches.append(Breach("orders", f"{request.mode}_max_orders_per_run",
                               f"{len(request.orders)} orders; {request.mode} runs may have at most "
                               f"{mode_limits.max_orders_per_run}"))
    for index, order in enumerate(request.orders):
        if mode_limits.max_order_quantity is not None and order.quantity > mode_limits.max_order_quantity:
            breaches.append(Breach(f"orders[{index}].quantity", f"{request.mode}_max_order_quantity",
                                   f"{order.quantity:g} shares; {request.mode} orders may be at most "
                                   f"{mode_limits.max_order_quantity:g}"))
        if allowed and symbol_key(order.symbol) not in allowed:
            breaches.append(Breach(f"orders[{index}].symbol", "symbol_allowlist",
                                   f"{order.symbol} is not in this gateway's symbol_allowlist"))
        if symbol_key(order.symbol) in denied:
            breaches.append(Breach(f"orders[{index}].symbol", "symbol_denylist",
                                   f"{order.symbol} is in this gateway's symbol_denylist"))
    return breaches


@dataclass
class Admission:
    """Set `created` once the engine recorded a new run: only those count against the rate."""

    created: bool = False


class PreTradeGate:
    """Admits runs past the limits. A run takes its place in the caller's rate window before the
    engine records it, and gives it back if no new run came of it (refused, or a retry of an
    existing run), so concurrent SubmitRuns cannot overrun the window between check and write.

    Use `admit`: it sees the admission through even when the caller stops waiting. The engine
    records and sends a run whose caller went away (its commit is shielded), so the gate must go
    on counting it, and go on holding the open-run lock until it is recorded."""

    def __init__(
        self,
        limits: PreTradeLimits,
        open_runs: Callable[[], Awaitable[Sized]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._open_runs = open_runs
        self._clock = clock
        self._started: dict[str, deque[float]] = defaultdict(deque)
        # Held from counting RUNNING runs until the new run is committed, when max_open_runs is
        # set: two runs admitted side by side would otherwise both see one place left.
        self._open_runs_lock = asyncio.Lock()

    async def admit(
        self, request: RunRequest, caller: str, confirm_live: str,
        record: Callable[[], Awaitable[tuple[Recorded, bool]]],
        existing: Callable[[], Awaitable[Recorded | None]] | None = None,
    ) -> tuple[Recorded, bool]:
        """Raises LimitBreached, or has `record` record the run and returns what it returned
        (the run, and whether it already existed).

        Carried on to the end in a task of its own if the caller stops waiting: a cancelled
        SubmitRun let go of the open-run lock while the engine was still recording its run, and
        the next one counted a place that was taken.

        `existing` finds the run this request repeats, if any. Asked only when the rate or the
        open-run count refuses: a repeat starts nothing, and is answered with its run. Else a
        client retrying after a lost answer (or a deadline) at its limit was told
        RESOURCE_EXHAUSTED, "retry in 60s", for a run that existed and traded."""
        async def admitted() -> tuple[Recorded, bool]:
            try:
                async with self.admission(request, caller, confirm_live) as admission:
                    recorded = await record()
                    admission.created = not recorded[1]
                    return recorded
            except LimitBreached as breached:
                if breached.exhausted and existing is not None and (run := await existing()) is not None:
                    return run, True
                raise

        task = asyncio.ensure_future(admitted())
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            task.add_done_callback(_say_how_it_ended)
            raise

    @asynccontextmanager
    async def admission(self, request: RunRequest, caller: str, confirm_live: str) -> AsyncIterator[Admission]:
        """Raises LimitBreached, or lets the body record the run; `caller` is the authenticated
        caller's name, whom the rate is counted for."""
        breaches = breaches_of(request, confirm_live, self.limits)
        if breaches:
            raise LimitBreached(breaches)
        admission = Admission()
        stamp = self._take_rate_place(caller)
        recording = False  # the body runs: from here a run may come of it
        try:
            if self.limits.max_open_runs is None:
                recording = True
                yield admission
            else:
                async with self._open_runs_lock:
                    running = len(await self._open_runs())
                    if running >= self.limits.max_open_runs:
                        raise LimitBreached([Breach("max_open_runs", "max_open_runs",
                                                    f"{running} runs are RUNNING; this gateway allows "
                                                    f"{self.limits.max_open_runs} at once, retry when one ends")],
                                            exhausted=True)
                    recording = True
                    yield admission
        except asyncio.CancelledError:
            if recording:
                # Cancelled while the engine records the run, which it finishes regardless: a run
                # may well have been made and sent. It counts (failing safe); given back, a caller
                # beyond its rate started runs by cancelling each SubmitRun once under way.
                admission.created = True
            raise
        finally:
            if stamp is not None and not admission.created:
                self._give_back(caller, stamp)

    def _take_rate_place(self, caller: str) -> float | None:
        limit = self.limits.max_runs_per_minute_per_caller
        if limit is None:
            return None
        now = self._clock()
        started = self._started[caller]
        while started and started[0] <= now - RATE_WINDOW_SECONDS:
            started.popleft()
        if len(started) >= limit:
            wait = started[0] + RATE_WINDOW_SECONDS - now
            raise LimitBreached([Breach("max_runs_per_minute_per_caller", "max_runs_per_minute_per_caller",
                                        f"{caller} started {len(started)} runs in the last minute; this gateway "
                                        f"allows {limit}, retry in {wait:.0f}s")], exhausted=True)
        started.append(now)
        return now

    def _give_back(self, caller: str, stamp: float) -> None:
        started = self._started.get(caller)
        if started is None:
            return
        try:
            started.remove(stamp)
        except ValueError:
            pass
        if not started:
            del self._started[caller]


def _say_how_it_ended(task: asyncio.Task[object]) -> None:
    # Nobody waits for an admission whose caller went away: say what became of it, or asyncio
    # reports an exception that was never retrieved.
    if not task.cancelled() and (error := task.exception()) is not None:
        log.info("SubmitRun whose caller had gone away ended without a new run: %s", error)
