"""The rows and events the gateway writes for a run of one order filled in n executions, built
with the gateway's own payload shapes (server/engine/recorder.py), for the floors: the bare
database transaction writes these rows, the bare gRPC server streams these events.

Per execution the gateway writes one trade_fills row and two trade_events rows (the fill, then
its commission, merged into the fill row) and updates the order (filled quantity, average price)
and the run (last sequence); around them come the order's status changes and the run's final
status.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from execgw.server.api import convert
from execgw.server.db.models import TradeFill, utcnow
from execgw.server.engine.recorder import fill_payload
from execgw.server.engine.stored_event import StoredEvent
from execgw.server.ib.events import ExecutionReport
from execgw.v1 import execution_pb2 as pb

ORDER_REF = "bench-floor-0001"
PRICE = 100.0
COMMISSION = 1.0


def execution_report(i: int, received_at: datetime | None = None, source: str = "0000e0d5") -> ExecutionReport:
    """The i-th one-share execution of the order, as the IB session hands it to the engine;
    `source` is the first part of IB's exec id (unique per order here)."""
    now = received_at or datetime.now(UTC)
    return ExecutionReport(
        endpoint="127.0.0.1:4002", req_id=-1, order_id=7, perm_id=1_000_000_007, client_id=1,
        order_ref=ORDER_REF, exec_id=f"{source}.{0x65000000 + i:08x}.01.01", symbol="AAPL", sec_type="STK",
        currency="USD", exchange="ISLAND", side="BOT", shares=1.0, price=PRICE, cum_qty=float(i + 1),
        avg_price=PRICE, account="DU1234567", trade_time=now.replace(microsecond=0), received_at=now,
    )


def _json_safe(values: dict[str, Any]) -> dict[str, Any]:
    """As the recorder stores raw_payload: datetimes as ISO text."""
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in values.items()}


def fill_row(order_id: int, report: ExecutionReport) -> dict[str, Any]:
    """A trade_fills row as the recorder writes it, with its commission already merged."""
    return {
        "order_id": order_id, "exec_id": report.exec_id, "exec_base": report.exec_base,
        "filled_qty": report.shares, "price": report.price, "commission": COMMISSION,
        "commission_currency": "USD", "trade_time": report.trade_time.replace(tzinfo=None) if report.trade_time else None,
        "currency": report.currency, "exchange": report.exchange, "side": report.side, "account": report.account,
        "ib_perm_id": report.perm_id, "raw_payload": _json_safe(asdict(report)),
    }


def fill_event_payload(report: ExecutionReport, filled: float) -> dict[str, Any]:
    row = fill_row(0, report)
    fill = TradeFill(**{k: v for k, v in row.items() if k != "commission"})
    return {"client_order_id": ORDER_REF, "fill": fill_payload(fill), "corrects_exec_id": "",
            "order_filled_quantity": filled, "order_avg_fill_price": PRICE}


def commission_payload(report: ExecutionReport) -> dict[str, Any]:
    return {"client_order_id": ORDER_REF, "exec_id": report.exec_id, "commission": COMMISSION, "currency": "USD"}


def _status(sequence: int, run_id: str, status: str, previous: str, filled: float, total: float) -> StoredEvent:
    payload = {"client_order_id": ORDER_REF, "ib_order_id": 7, "status": f"ORDER_STATUS_{status}",
               "previous_status": f"ORDER_STATUS_{previous}", "filled_quantity": filled,
               "remaining_quantity": total - filled, "ib_perm_id": 1_000_000_007, "ib_status": "Submitted",
               "reason": ""}
    return StoredEvent(run_id, sequence, "order_status", payload, utcnow(), utcnow())


def run_events(run_id: str, executions: int) -> list[StoredEvent]:
    """The events of a run whose one order fills in `executions` one-share executions, each with
    its commission, in the order the gateway stores them."""
    total = float(executions)
    events = [_status(1, run_id, "SUBMITTED", "PENDING_SUBMIT", 0.0, total)]
    start = datetime.now(UTC)
    for i in range(executions):
        report = execution_report(i, start + timedelta(milliseconds=i))
        filled = float(i + 1)
        events.append(StoredEvent(run_id, len(events) + 1, "fill", fill_event_payload(report, filled),
                                  report.trade_time, utcnow()))
        if i == 0 and executions > 1:
            events.append(_status(len(events) + 1, run_id, "PARTIALLY_FILLED", "SUBMITTED", filled, total))
        if i == executions - 1:
            events.append(_status(len(events) + 1, run_id, "FILLED",
                                  "PARTIALLY_FILLED" if executions > 1 else "SUBMITTED", filled, total))
        events.append(StoredEvent(run_id, len(events) + 1, "commission", commission_payload(report),
                                  report.received_at, utcnow()))
    events.append(StoredEvent(run_id, len(events) + 1, "run_status",
                              {"status": "RUN_STATUS_SUCCESS", "previous_status": "RUN_STATUS_RUNNING",
                               "reason": "", "final": True}, None, utcnow()))
    return events


def watch_messages(run_id: str, executions: int) -> list[bytes]:
    """run_events as the serialized WatchRunResponse messages the gateway streams."""
    return [pb.WatchRunResponse(event=convert.event_to_proto(e)).SerializeToString()
            for e in run_events(run_id, executions)]
