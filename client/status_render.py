"""How the gateway's status and a settled order look on a terminal (`execgw status`, `execgw
settle`), and the status as JSON for scripts (`execgw status --json`)."""

from __future__ import annotations

import json

from google.protobuf.json_format import MessageToDict
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from execgw.client.render import mode_name, order_status_name, quantity, side_name, when
from execgw.v1 import admin_pb2 as admin


def status_json(status: admin.GetStatusResponse) -> str:
    """The status with the contract's field names, every field present (zeros and empty lists
    included), so a script reads `taking_writes: false` rather than a missing key."""
    return json.dumps(MessageToDict(status, preserving_proto_field_name=True,
                                    always_print_fields_with_no_presence=True), indent=2)


def yes_no(value: bool, *, good: bool = True) -> Text:
    return Text("yes" if value else "no", style="green" if value == good else "red")


def status_view(status: admin.GetStatusResponse) -> RenderableType:
    uptime = status.uptime.ToTimedelta()
    parts: list[RenderableType] = [
        Text(f"gateway {status.gateway_name} {status.version}, up {str(uptime).split('.')[0]} "
             f"(since {when(status.started_at)})", style="bold"),
        _endpoints(status),
        _database(status.database),
    ]
    if status.lists_unavailable:
        parts.append(Text(f"open runs and UNKNOWN orders: {status.lists_unavailable}", style="red"))
        return Group(*parts)
    parts.append(_open_runs(status) if status.open_runs else Text("open runs: none"))
    parts.append(_unknown_orders(status) if status.unknown_orders else Text("UNKNOWN orders: none"))
    return Group(*parts)


def _endpoints(status: admin.GetStatusResponse) -> Table:
    table = Table(title="IB endpoints", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("mode", "address", "client id", "connected", "taking orders", "accounts", "next order id",
                   "last reconciliation", "pacing"):
        table.add_column(column)
    for endpoint in status.endpoints:
        taking = yes_no(endpoint.taking_orders)
        if endpoint.not_taking_orders_reason:
            taking.append(f": {endpoint.not_taking_orders_reason}", style="red")
        pacing = endpoint.pacing
        table.add_row(
            mode_name(endpoint.mode), endpoint.address, str(endpoint.client_id), yes_no(endpoint.connected), taking,
            ", ".join(endpoint.accounts), str(endpoint.next_order_id or ""),
            _reconciliation(endpoint.last_full_reconciliation if endpoint.HasField("last_full_reconciliation")
                            else None),
            f"{pacing.messages_per_second}/s, {pacing.orders_waiting} waiting, "
            f"{pacing.waited_seconds:.1f}s waited over {pacing.turns}",
        )
    return table


def _reconciliation(record: admin.ReconciliationRecord | None) -> Text:
    if record is None:
        return Text("none yet")
    if not record.succeeded:
        return Text(f"{when(record.finished_at)} failed: {record.failure}", style="red")
    return Text(f"{when(record.finished_at)} ok: {record.executions_found} executions "
                f"({record.executions_stored} new), {record.orders_settled} orders settled")


def _database(database: admin.DatabaseStatus) -> Table:
    table = Table(title="database", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("url", "taking writes", "writer backlog", "held", "dropped", "taking new runs"):
        table.add_column(column)
    dropped = str(database.reports_dropped) + (" (recovering)" if database.recovering else "")
    table.add_row(database.url, yes_no(database.taking_writes), str(database.writer_backlog),
                  str(database.reports_held), dropped, yes_no(database.accepting_runs))
    return table


def _open_runs(status: admin.GetStatusResponse) -> Table:
    table = Table(title="open runs", title_justify="left", show_edge=False, pad_edge=False)
    for column in ("run id", "mode", "account", "orders", "open", "deadline", "submitted by"):
        table.add_column(column)
    for run in status.open_runs:
        table.add_row(run.run_id, mode_name(run.mode), run.account or "(default)", str(run.orders),
                      str(run.open_orders), when(run.deadline), run.submitted_by)
    return table


def _unknown_orders(status: admin.GetStatusResponse) -> Table:
    table = Table(title="UNKNOWN orders (check TWS, then: execgw settle CLIENT_ORDER_ID --note ...)",
                  title_justify="left", show_edge=False, pad_edge=False)
    for column in ("client order id", "run id", "mode", "IB order id", "order", "created", "reason"):
        table.add_column(column)
    for order in status.unknown_orders:
        table.add_row(order.client_order_id, order.run_id, mode_name(order.mode), str(order.ib_order_id or ""),
                      f"{side_name(order.side)} {quantity(order.quantity)} {order.symbol}"
                      + (f" in {order.account}" if order.account else ""),
                      when(order.created_at), order.reason)
    return table


def settled_view(settled: admin.SettleOrderResponse) -> RenderableType:
    lines = [Text(f"{settled.client_order_id} (run {settled.run_id}) is now {order_status_name(settled.status)}: "
                  f"{settled.status_reason}")]
    if settled.run_ends:
        lines.append(Text(f"it was the run's last open order: the run ends now (execgw watch {settled.run_id})",
                          style="dim"))
    return Group(*lines)
