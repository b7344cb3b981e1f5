"""The operator's status as the contract says it (execgw.v1.GetStatusResponse), from what the
engine holds in memory and what the database says of open runs and UNKNOWN orders."""

from __future__ import annotations

from datetime import UTC, datetime

from execgw.server.api import convert
from execgw.server.engine.engine import ExecutionEngine
from execgw.server.engine.operator_reads import OpenRunFacts, UnknownOrderFacts
from execgw.server.engine.reconciliations import FULL, RUN_END, ReconciliationRecord
from execgw.server.engine.reports import ReportIntake
from execgw.server.ib.session import IBSession
from execgw.v1 import admin_pb2 as admin
from execgw.v1 import execution_pb2 as pb

NOT_CONNECTED = "IB endpoint not connected, or cut off from IB's servers (1100)"


def not_taking_orders_reason(engine: ExecutionEngine, mode: str) -> str:
    """Why an endpoint takes no orders, in the words health `execgw.ib.<mode>` uses; "" when it does."""
    if engine.mode_ready(mode):
        return ""
    wrong_accounts = engine.wrong_accounts.get(mode)
    if wrong_accounts is not None:
        return wrong_accounts
    read_only = engine.read_only.get(mode)
    if read_only is not None:
        return ("TWS / IB Gateway has 'Read-Only API' on (Global Configuration > API > Settings); "
                f"IB said: {read_only}")
    return NOT_CONNECTED


def endpoint_status(engine: ExecutionEngine, session: IBSession, messages_per_second: int) -> admin.EndpointStatus:
    endpoint = session.endpoint
    mode = endpoint.mode
    status = admin.EndpointStatus(
        mode=convert.MODE_TO_PROTO.get(mode, pb.TRADING_MODE_UNSPECIFIED), address=endpoint.address,
        client_id=endpoint.client_id, connected=session.ready, taking_orders=engine.mode_ready(mode),
        not_taking_orders_reason=not_taking_orders_reason(engine, mode), accounts=list(session.accounts),
        next_order_id=session.order_ids.next_id, connections_made=session.connections_made,
        pacing=admin.PacingStatus(
            messages_per_second=messages_per_second, turns=session.pacing.turns,
            waited_seconds=session.pacing.waited_seconds, orders_waiting=engine.orders_waiting(mode),
        ),
    )
    records = engine.reconciler.records.last
    if (full := records.get((mode, FULL))) is not None:
        status.last_full_reconciliation.CopyFrom(reconciliation(full))
    if (run_end := records.get((mode, RUN_END))) is not None:
        status.last_run_end_reconciliation.CopyFrom(reconciliation(run_end))
    return status


def reconciliation(record: ReconciliationRecord) -> admin.ReconciliationRecord:
    message = admin.ReconciliationRecord(
        succeeded=record.succeeded, failure=record.failure, executions_found=record.executions_found,
        executions_stored=record.executions_stored, orders_settled=record.orders_settled,
    )
    message.started_at.FromDatetime(record.started_at)
    if record.finished_at is not None:
        message.finished_at.FromDatetime(record.finished_at)
    return message


def database_status(url: str, reports: ReportIntake, accepting_runs: bool) -> admin.DatabaseStatus:
    backlog = reports.held
    return admin.DatabaseStatus(
        url=url, taking_writes=reports.database_ok, writer_backlog=backlog,
        reports_held=0 if reports.database_ok else backlog, reports_dropped=reports.events_dropped,
        recovering=reports.recovering, accepting_runs=accepting_runs,
    )


def open_run(facts: OpenRunFacts) -> admin.OpenRunSummary:
    message = admin.OpenRunSummary(
        run_id=facts.run_id, mode=convert.MODE_TO_PROTO.get(facts.mode, pb.TRADING_MODE_UNSPECIFIED),
        account=facts.account or "", orders=facts.orders, open_orders=facts.open_orders,
        submitted_by=facts.submitted_by or "",
    )
    message.created_at.FromDatetime(facts.created_at)
    if facts.deadline_at is not None:
        message.deadline.FromDatetime(facts.deadline_at)
    return message


def unknown_order(facts: UnknownOrderFacts) -> admin.UnknownOrder:
    message = admin.UnknownOrder(
        client_order_id=facts.client_order_id, run_id=facts.run_id,
        mode=convert.MODE_TO_PROTO.get(facts.mode, pb.TRADING_MODE_UNSPECIFIED), ib_order_id=facts.ib_order_id or 0,
        reason=facts.status_reason or "", account=facts.account or facts.run_account or "", symbol=facts.symbol,
        side=convert.SIDE_TO_PROTO.get(facts.side, pb.ORDER_SIDE_UNSPECIFIED), quantity=facts.quantity,
    )
    message.created_at.FromDatetime(facts.created_at)
    return message


def now() -> datetime:
    return datetime.now(UTC)
