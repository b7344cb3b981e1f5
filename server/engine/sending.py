"""Sending a session's orders to IB: one queue per IB session, in the order the ids were taken.

IB wants each client id's order ids to arrive in increasing order: an id below one it has seen
is refused with 103 "Duplicate order id". Runs submitted at the same time take their ids under
one lock and queue their orders in that same order; a single task per session sends them. What
cannot be sent waits for the socket (until its run's deadline) and holds back the orders after
it, which could not have been sent either.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from execgw.server.db.models import TradeOrder, TradeRun, utcnow
from execgw.server.engine.recorder import Recorder
from execgw.server.engine.runs import OpenRun
from execgw.server.ib.session import IBSession, MarketOrder, NotSent, Withdrawn

log = logging.getLogger(__name__)
T = TypeVar("T")

Commit = Callable[[Callable[[Recorder], T]], Awaitable[T]]


@dataclass(frozen=True)
class _Outgoing:
    run: TradeRun
    order: TradeOrder
    open_run: OpenRun


class OrderSender:
    """Sends the orders of one IB session in id order."""

    def __init__(self, session: IBSession, commit: Commit[object]) -> None:
        self.session = session
        self._commit = commit
        self._queue: asyncio.Queue[_Outgoing] = asyncio.Queue()
        # Held from taking a run's ids until its orders are queued: queue order = id order.
        self.admission = asyncio.Lock()

    def enqueue(self, run: TradeRun, open_run: OpenRun) -> None:
        for order in sorted(run.orders, key=lambda o: o.ib_order_id or 0):
            self._queue.put_nowait(_Outgoing(run, order, open_run))

    @property
    def waiting(self) -> int:
        return self._queue.qsize()

    async def run(self) -> None:
        """The session's sending loop; ends only when cancelled."""
        while True:
            outgoing = await self._queue.get()
            try:
                await self._send(outgoing)
            except asyncio.CancelledError:
                raise
            except Exception:
                # Not an IB or socket outcome we know: the order may or may not have gone out, and
                # sending the rest of its run after an unexplained failure is not safe. They are
                # withdrawn as their turn comes; nothing is left pending.
                log.exception("sending %s failed unexpectedly; the rest of run %s is withdrawn",
                              outgoing.order.client_order_id, outgoing.run.id)
                outgoing.open_run.sending_stopped = True
                await self._mark_unknown(
                    outgoing.order, "sending to IB failed unexpectedly; waiting for IB's account of the order"
                )

    async def _send(self, outgoing: _Outgoing) -> None:
        run, order, open_run = outgoing.run, outgoing.order, outgoing.open_run
        market_order = MarketOrder(
            order_id=order.ib_order_id or 0, order_ref=order.client_order_id, symbol=order.symbol,
            sec_type=order.sec_type, exchange=order.exchange, primary_exchange=order.primary_exchange or "",
            currency=order.currency, side=order.side, quantity=order.quantity, account=order.account or "",
        )
        backoff = 0.05
        while True:
            try:
                await self.session.place_market_order(market_order, lambda: not open_run.sending_stopped)
                open_run.sent.add(market_order.order_id)
            except Withdrawn:
                await self._commit(lambda rec: rec.withdraw(order.id))
            except NotSent as exc:
                # Certainly not sent: wait for the socket to come back, until the run's deadline.
                remaining = (run.deadline_at - utcnow()).total_seconds() if run.deadline_at else 0.0
                if remaining > 0 and await self.session.wait_ready(remaining):
                    await asyncio.sleep(backoff)  # connected yet not written: do not spin
                    backoff = min(backoff * 2, 1.0)
                    continue
                log.error("%s was never sent to IB: %s", order.client_order_id, exc)
                await self._mark_unknown(order, "IB was not connected until the run's deadline")
            except OSError as exc:
                # Maybe sent, maybe not: UNKNOWN until reconciliation by orderRef tells. Never resent.
                log.error("sending %s to IB failed: %s", order.client_order_id, exc)
                await self._mark_unknown(order, f"sending to IB failed: {exc}")
            else:
                log.info("placed %s %s %s %s as IB order %s (run %s)", order.client_order_id, order.side,
                         order.quantity, order.symbol, order.ib_order_id, run.id)
            return

    async def _mark_unknown(self, order: TradeOrder, reason: str) -> None:
        await self._commit(lambda rec: rec.mark_unknown([order.id], reason))
