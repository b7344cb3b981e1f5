"""An operator settles an UNKNOWN order: it is concluded in our books as never at IB.

The gateway leaves an order UNKNOWN when IB's reports cannot say what became of it (created
before IB's current day began: reqExecutions and reqCompletedOrders no longer cover it). Only a
person who checked TWS / Account Management can conclude it. Settling changes our books only:
nothing is sent to IB, so should IB report a fill for the order after all, the ordinary
late-fill path still records it and corrects the order and its run.

The change goes through the books like any other (stored, then published to watchers and the
journal), and a run whose last open order this was ends as it would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from execgw.server.db.models import OrderStatus, RunStatus
from execgw.server.engine.books import Books
from execgw.server.engine.recorder import Recorder
from execgw.server.ib.session import IBSession

log = logging.getLogger(__name__)

SETTLED_IB_STATUS = "settled by operator"


class NotUnknown(Exception):
    """The order is no longer UNKNOWN (IB reported it, or it was settled meanwhile)."""

    def __init__(self, client_order_id: str, status: str) -> None:
        super().__init__(f"order {client_order_id!r} is {status}, not UNKNOWN: only an UNKNOWN order is settled")
        self.status = status


class AnotherGatewaysOrder(Exception):
    """The order was placed through an IB endpoint or client id this gateway does not hold: only
    the gateway whose reconciliation covers it may conclude it."""


@dataclass(frozen=True)
class Settled:
    client_order_id: str
    run_id: str
    status: str
    status_reason: str
    run_ends: bool


def settled_reason(operator: str, note: str) -> str:
    return f"settled by operator {operator!r} as not at IB (our books only, nothing sent to IB): {note}"


class OrderSettler:
    def __init__(self, books: Books, sessions: Mapping[str, IBSession], finish_soon: Callable[[str], None]) -> None:
        self._books = books
        self._sessions = sessions
        self._finish_soon = finish_soon

    def holds_endpoint(self, endpoint: str | None, client_id: int | None) -> bool:
        """Whether an order placed through `endpoint` with `client_id` is this gateway's to settle."""
        return any(s.endpoint.address == endpoint and s.endpoint.client_id == client_id
                   for s in self._sessions.values())

    async def settle(
        self, order_id: int, client_order_id: str, endpoint: str | None, client_id: int | None,
        operator: str, note: str,
    ) -> Settled:
        """Cancels the UNKNOWN order (trade_orders.id `order_id`) in our books; NotUnknown if its
        status changed since it was read, AnotherGatewaysOrder if it is not at our endpoints."""
        if not self.holds_endpoint(endpoint, client_id):
            raise AnotherGatewaysOrder(
                f"order {client_order_id!r} was placed through {endpoint} client id {client_id}, which this "
                "gateway does not connect to: settle it on the gateway that placed it")
        reason = settled_reason(operator, note)

        def work(rec: Recorder) -> tuple[str, str, bool, str]:
            # Decided on the writer's own copy, in the transaction: IB's report of the order may
            # have been applied since the caller looked.
            order = rec.order_by_id(order_id)
            if order.status != OrderStatus.UNKNOWN.value:
                return order.status, "", False, order.run_id
            rec.cancel_in_books(order, SETTLED_IB_STATUS, reason)
            if order.run.status != RunStatus.RUNNING.value:
                rec.refresh_finished_run(order)  # a run that ended with the order UNKNOWN
            return order.status, reason, rec.all_done(order.run_id), order.run_id

        status, recorded, run_ends, run_id = await self._books.commit(work)
        if not recorded:
            raise NotUnknown(client_order_id, status)
        log.warning("order %s settled by operator %r as not at IB (nothing sent to IB): %s",
                    client_order_id, operator, note, extra={"client_order_id": client_order_id, "run_id": run_id})
        if run_ends:
            self._finish_soon(run_id)
        return Settled(client_order_id, run_id, status, recorded, run_ends)
