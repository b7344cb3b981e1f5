"""How many WatchRun streams may be open: in total, and per caller.

Every open stream holds a bus queue, a task on the event loop and, while it catches up, reads on
the database. Without a bound a few thousand watchers slow every other call (SubmitRun waited
behind their reads) and the process runs out of memory before it says why. Beyond the bound a
stream is refused at once with RESOURCE_EXHAUSTED, which a client can act on.
"""

from __future__ import annotations

from collections import Counter

import grpc

from execgw.server.api.callers import LOCAL_CALLER, Caller


class TooManyStreams(Exception):
    """The message says which bound was reached and what to do; it goes to the caller as is."""


class WatchSlots:
    """Loop-only, like the bus: taken and given back on the event loop, so no lock is needed."""

    def __init__(self, total: int, per_caller: int) -> None:
        self.total = total
        self.per_caller = per_caller
        self._open: Counter[str] = Counter()

    @property
    def open_streams(self) -> int:
        return sum(self._open.values())

    def open_for(self, caller: str) -> int:
        return self._open[caller]

    def take(self, caller: str) -> WatchSlot:
        if self._open[caller] >= self.per_caller:
            raise TooManyStreams(
                f"too many WatchRun streams from {caller}: {self.per_caller} are open, the most one caller "
                "may hold; end one (or watch runs one after another) and retry"
            )
        if self.open_streams >= self.total:
            raise TooManyStreams(
                f"too many WatchRun streams on this gateway: {self.total} are open, the most it serves; "
                "retry later"
            )
        self._open[caller] += 1
        return WatchSlot(self, caller)

    def _give_back(self, caller: str) -> None:
        self._open[caller] -= 1
        if self._open[caller] <= 0:
            del self._open[caller]


class WatchSlot:
    """One open stream's place; `release` is idempotent, so every way out of a stream may call it."""

    def __init__(self, slots: WatchSlots, caller: str) -> None:
        self._slots = slots
        self.caller = caller
        self._held = True

    def release(self) -> None:
        if self._held:
            self._held = False
            self._slots._give_back(self.caller)


def stream_owner(caller: Caller, context: grpc.aio.ServicerContext) -> str:
    """Whose streams a new one counts against: the authenticated caller's name. Callers with
    tokens share one loopback or proxy address, so by address one could take every place of
    the others. Only the implicit local caller (no callers file, loopback only) has no name of
    its own: there, as before, its TLS identity or address."""
    if caller is LOCAL_CALLER:
        return caller_of(context)
    return f"caller {caller.name!r}"


def caller_of(context: grpc.aio.ServicerContext) -> str:
    """Who opens a stream: the TLS client identity when there is one, else the peer's address
    without its port (each connection of one client has another port; its address stays)."""
    identities = context.peer_identities()
    if identities:
        return b",".join(identities).decode(errors="replace")
    peer = context.peer() or "unknown"
    kind, _, address = peer.partition(":")
    if kind in ("ipv4", "ipv6"):
        host, _, _port = address.rpartition(":")
        return f"{kind}:{host}"
    return peer


def server_options(max_watch_streams: int) -> list[tuple[str, int]]:
    """gRPC server options sized for the stream bounds.

    grpc core queues calls that the aio server has not yet taken up, and once more than
    `grpc.server.max_pending_requests` (1000 by default) wait there it cancels new ones at
    random, before any servicer sees them: a burst of watchers connecting at once was reset with
    CANCELLED and nothing logged, and a SubmitRun arriving in that burst could be too. With room
    for every stream the bounds allow, and more, every call reaches the servicer, which refuses
    with RESOURCE_EXHAUSTED and says why.
    """
    pending = max(1000, 2 * max_watch_streams + 1000)
    return [
        ("grpc.server.max_pending_requests", pending),
        ("grpc.server.max_pending_requests_hard_limit", 3 * pending),
    ]
