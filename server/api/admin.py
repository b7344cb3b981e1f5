"""AdminService: the operator's status of the gateway, and settling an UNKNOWN order.

Served on the gateway's port behind the same authentication as ExecutionService: GetStatus needs
`read`, SettleOrder `admin` and the order's mode. A caller limited to accounts sees only the runs
and orders of those accounts, and another account's order does not exist for it (NOT_FOUND, in
the words used for a missing one).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import logging
from dataclasses import dataclass
from datetime import datetime

import grpc
from sqlalchemy.exc import InterfaceError, OperationalError

from execgw.server.api import auth, status_view
from execgw.server.api.callers import Caller, Permission
from execgw.server.api.errors import abort_bad_request, abort_precondition
from execgw.server.db.models import OrderStatus
from execgw.server.engine.engine import ExecutionEngine
from execgw.server.engine.operator_reads import OrderFacts, open_runs, order_named, unknown_orders_at
from execgw.server.engine.settling import AnotherGatewaysOrder, NotUnknown
from execgw.server.engine.store import Store
from execgw.server.engine.validation import CLIENT_ORDER_ID, Violation
from execgw.v1 import admin_pb2 as admin
from execgw.v1 import admin_pb2_grpc as admin_grpc
from execgw.v1 import execution_pb2 as pb

log = logging.getLogger(__name__)

MAX_NOTE = 1000  # characters: a sentence or two of what was checked, kept in the order's reason


@dataclass(frozen=True)
class GatewayFacts:
    """What the status says of the gateway itself."""

    name: str
    version: str
    started_at: datetime
    database_url: str  # already masked (display_url): never a password
    messages_per_second: int
    read_timeout: float  # seconds the status waits for the database before answering without its lists


def gateway_version() -> str:
    """The installed distribution's version, as `pip show execgw` says it."""
    try:
        return importlib.metadata.version("execgw")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree without installing
        return "unknown"


class AdminService(admin_grpc.AdminServiceServicer):
    def __init__(self, engine: ExecutionEngine, store: Store, facts: GatewayFacts) -> None:
        self._engine = engine
        self._store = store
        self._facts = facts

    # -- GetStatus -----------------------------------------------------------------------------

    async def GetStatus(
        self, request: admin.GetStatusRequest, context: grpc.aio.ServicerContext
    ) -> admin.GetStatusResponse:
        caller = await auth.require(context, Permission.READ)
        engine, facts = self._engine, self._facts
        now = status_view.now()
        response = admin.GetStatusResponse(
            gateway_name=facts.name, version=facts.version,
            endpoints=[status_view.endpoint_status(engine, session, facts.messages_per_second)
                       for _mode, session in sorted(engine.sessions.items())],
            database=status_view.database_status(facts.database_url, engine.reports, engine.accepting_runs),
        )
        response.started_at.FromDatetime(facts.started_at)
        response.uptime.FromTimedelta(now - facts.started_at)
        run_ids = engine.open_run_ids
        placed_here = [(s.endpoint.address, s.endpoint.client_id) for s in engine.sessions.values()]
        try:
            # Bounded: the status matters most while the database is down or hung, and must
            # still say everything it knows without it.
            runs, unknown = await asyncio.wait_for(
                self._store.read(lambda s: (open_runs(s, run_ids), unknown_orders_at(s, placed_here))),
                facts.read_timeout,
            )
        except (OperationalError, InterfaceError, TimeoutError) as exc:
            log.warning("GetStatus could not read open runs and UNKNOWN orders: %s", type(exc).__name__)
            response.lists_unavailable = ("the database could not be read: open runs and UNKNOWN orders are "
                                          "not known right now")
            return response
        response.open_runs.extend(status_view.open_run(r) for r in runs if auth.may_see(caller, r.account))
        response.unknown_orders.extend(status_view.unknown_order(o) for o in unknown
                                       if auth.may_see(caller, o.run_account))
        return response

    # -- SettleOrder -----------------------------------------------------------------------------

    async def SettleOrder(
        self, request: admin.SettleOrderRequest, context: grpc.aio.ServicerContext
    ) -> admin.SettleOrderResponse:
        # The permission first: a caller that may settle nothing learns nothing of orders by trying.
        caller = await auth.require(context, Permission.ADMIN)
        violations = []
        if not CLIENT_ORDER_ID.fullmatch(request.client_order_id):
            violations.append(Violation("client_order_id", "required: the UNKNOWN order's client_order_id "
                                        "(1-64 characters of letters, digits, '-', '_', '.', ':')"))
        if not request.note.strip():
            violations.append(Violation("note", "required: what you checked in TWS / Account Management and "
                                        "found, kept with the order"))
        elif len(request.note) > MAX_NOTE:
            violations.append(Violation("note", f"at most {MAX_NOTE} characters"))
        if violations:
            await abort_bad_request(context, violations)
        order = await self._visible_order(caller, request.client_order_id, context)
        await auth.require(context, Permission(order.mode))
        if order.status != OrderStatus.UNKNOWN.value:
            await _abort_not_unknown(context, order.client_order_id, order.status)
        note = " ".join(request.note.split())  # one line in the reason and the log
        log.info("SettleOrder %s by %s from %s", order.client_order_id, caller.name, context.peer())
        try:
            settled = await self._engine.settler.settle(
                order.id, order.client_order_id, order.ib_endpoint, order.ib_client_id, caller.name, note)
        except NotUnknown as changed:
            await _abort_not_unknown(context, order.client_order_id, changed.status)
            raise
        except AnotherGatewaysOrder as elsewhere:
            await abort_precondition(
                context, grpc.StatusCode.FAILED_PRECONDITION, f"client_order_id:{order.client_order_id}",
                "another gateway's order: placed through an IB endpoint or client id this gateway does not use",
                str(elsewhere),
            )
            raise
        except (OperationalError, InterfaceError) as exc:
            log.error("SettleOrder %s: database unavailable: %s", order.client_order_id, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable; nothing was changed, retry later")
            raise
        return admin.SettleOrderResponse(
            client_order_id=settled.client_order_id, run_id=settled.run_id,
            status=pb.OrderStatus.Value(f"ORDER_STATUS_{settled.status}"), status_reason=settled.status_reason,
            run_ends=settled.run_ends,
        )

    async def _visible_order(self, caller: Caller, client_order_id: str,
                             context: grpc.aio.ServicerContext) -> OrderFacts:
        try:
            order = await self._store.read(lambda s: order_named(s, client_order_id))
        except (OperationalError, InterfaceError) as exc:
            log.error("SettleOrder %s: database unavailable: %s", client_order_id, exc)
            await context.abort(grpc.StatusCode.UNAVAILABLE, "database unavailable; nothing was changed, retry later")
            raise
        if order is None or not auth.may_see(caller, order.run_account):
            await context.abort(grpc.StatusCode.NOT_FOUND, f"client_order_id: no order {client_order_id!r}")
            raise AssertionError("unreachable")
        return order


async def _abort_not_unknown(context: grpc.aio.ServicerContext, client_order_id: str, status: str) -> None:
    await abort_precondition(
        context, grpc.StatusCode.FAILED_PRECONDITION, f"client_order_id:{client_order_id}",
        f"the order is {status}; only an UNKNOWN order can be settled",
        f"client_order_id: order {client_order_id!r} is {status}, not UNKNOWN; only an UNKNOWN order can be settled",
    )
