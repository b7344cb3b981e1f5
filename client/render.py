"""How runs, orders, fills and events look on a terminal: rich tables and one-line descriptions.

Consoles are made with markup off: gateway text such as ``orders[0].quantity`` must print as is,
not be taken for rich markup. Styling goes through ``style=`` and ``Text`` instead.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable
from datetime import datetime

from google.protobuf.timestamp_pb2 import Timestamp
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from execgw.client.client import SubmitResult
from execgw.v1 import execution_pb2 as pb

# Wide enough for a run id, a client order id and a reason on one line when output goes to a file
# or a pipe, where rich would otherwise assume 80 columns and wrap.
PLAIN_WIDTH = 200

RUN_STATUS_STYLE = {"RUNNING": "yellow", "SUCCESS": "green", "PARTIAL": "dark_orange", "FAILED": "red",
                    "CANCELLED": "magenta"}
ORDER_STATUS_STYLE = {"FILLED": "green", "PARTIALLY_FILLED": "yellow", "SUBMITTED": "cyan",
                      "PENDING_SUBMIT": "cyan", "CANCELLED": "magenta", "REJECTED": "red", "INACTIVE": "red",
                      "UNKNOWN": "red"}


def make_console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, markup=False, highlight=False,
                   width=None if stream.isatty() else PLAIN_WIDTH)


# -- names and numbers ----------------------------------------------------------------------------------


def run_status_name(status: int) -> str:
    return pb.RunStatus.Name(status).removeprefix("RUN_STATUS_")


def order_status_name(status: int) -> str:
    return pb.OrderStatus.Name(status).removeprefix("ORDER_STATUS_")


def side_name(side: int) -> str:
    return pb.OrderSide.Name(side).removeprefix("ORDER_SIDE_")


def mode_name(mode: int) -> str:
    return pb.TradingMode.Name(mode).removeprefix("TRADING_MODE_").lower()


def quantity(value: float) -> str:
    return f"{value:g}"


def price(value: float | None) -> str:
    """Cents always, sub-cent digits (up to 4) only when the price has them: 187.90, 0.1235."""
    if value is None:
        return ""
    whole, _, fraction = f"{value:,.4f}".partition(".")
    return f"{whole}.{fraction.rstrip('0').ljust(2, '0')}"


def money(value: float | None, currency: str = "") -> str:
    return "" if value is None else f"{value:,.2f} {currency}".strip()


def when(stamp: Timestamp, *, date: bool = True) -> str:
    """A protobuf timestamp in local time; empty when unset."""
    if not stamp.seconds and not stamp.nanos:
        return ""
    local = datetime.fromtimestamp(stamp.seconds + stamp.nanos / 1e9)
    return local.strftime("%Y-%m-%d %H:%M:%S" if date else "%H:%M:%S.%f")[: None if date else -3]


def styled_run_status(status: int) -> Text:
    name = run_status_name(status)
    return Text(name, style=RUN_STATUS_STYLE.get(name, ""))


def styled_order_status(status: int) -> Text:
    name = order_status_name(status)
    return Text(name, style=ORDER_STATUS_STYLE.get(name, ""))


def optional(message: object, field: str) -> float | None:
    """The value of a proto3 ``optional`` field, None when absent."""
    return getattr(message, field) if message.HasField(field) else None  # type: ignore[attr-defined]


def transition(name: Callable[[int], str], before: int, after: int) -> str:
    """``SUBMITTED -> FILLED``, or just ``PENDING_SUBMIT`` for a first state."""
    return name(after) if before == 0 else f"{name(before)} -> {name(after)}"


# -- events ---------------------------------------------------------------------------------------------


def describe_event(event: pb.RunEvent) -> str:
    """One line per event, e.g. ``#5 12:00:01.250 fill buy-1 100 @ 187.90 (filled 100, avg 187.90)``."""
    head = f"#{event.sequence} {when(event.stored_at, date=False)}".rstrip()
    kind = event.WhichOneof("event")
    if kind == "order_status":
        change = event.order_status
        total = change.filled_quantity + change.remaining_quantity
        text = (f"order {change.client_order_id} (IB {change.ib_order_id}) "
                f"{transition(order_status_name, change.previous_status, change.status)}, "
                f"filled {quantity(change.filled_quantity)}/{quantity(total)}")
        if change.HasField("avg_fill_price"):
            text += f" avg {price(change.avg_fill_price)}"
        if change.reason:
            text += f": {change.reason}"
    elif kind == "fill":
        fill = event.fill
        text = (f"fill {fill.client_order_id} {quantity(fill.fill.quantity)} @ {price(fill.fill.price)} "
                f"on {fill.fill.exchange or '?'} exec {fill.fill.exec_id}")
        if fill.corrects_exec_id:
            text += f" (corrects {fill.corrects_exec_id})"
        text += f" (filled {quantity(fill.order_filled_quantity)}, avg {price(fill.order_avg_fill_price)})"
    elif kind == "commission":
        commission = event.commission
        text = (f"commission {commission.client_order_id} {money(commission.commission, commission.currency)} "
                f"exec {commission.exec_id}")
        if commission.HasField("realized_pnl"):
            text += f" realized P&L {money(commission.realized_pnl, commission.currency)}"
    elif kind == "run_status":
        change = event.run_status
        text = (f"run {transition(run_status_name, change.previous_status, change.status)}"
                f"{' (final)' if change.final else ''}")
        if change.reason:
            text += f": {change.reason}"
    else:  # an event kind newer than this client
        text = f"event {kind or 'unknown'}"
    return f"{head} {text}"


# -- views ------------------------------------------------------------------------------------------------


def submit_view(result: SubmitResult) -> RenderableType:
    run = result.run
    title = Text.assemble(("run ", ""), (run.run_id, "bold"), f" ({mode_name(run.mode)}",
                          f", account {run.account}" if run.account else "", ")",
                          (" already existed: nothing sent again" if result.existing else "", "yellow"))
    table = Table(title=None, show_edge=False, pad_edge=False)
    for column in ("client order id", "side", "symbol", "quantity", "IB order id", "state"):
        table.add_column(column, justify="right" if column in ("quantity", "IB order id") else "left")
    for order in run.orders:
        table.add_row(order.spec.client_order_id, side_name(order.spec.side), order.spec.symbol,
                      quantity(order.spec.quantity), str(order.ib_order_id or ""), styled_order_status(order.status))
    return Group(title, table)


def runs_table(runs: Iterable[pb.Run]) -> Table:
    table = Table(show_edge=False, pad_edge=False)
    for column in ("run id", "created", "mode", "status", "orders", "filled", "submitted by"):
        table.add_column(column, justify="right" if column in ("orders", "filled") else "left")
    for run in runs:
        filled = sum(1 for o in run.orders if o.status == pb.ORDER_STATUS_FILLED)
        table.add_row(run.run_id, when(run.created_at), mode_name(run.mode), styled_run_status(run.status),
                      str(len(run.orders)), f"{filled}/{len(run.orders)}", run.submitted_by)
    return table


def run_view(run: pb.Run) -> RenderableType:
    """The run, its orders, and under each order its fills."""
    lines = [Text.assemble(("run ", ""), (run.run_id, "bold"), "  ", styled_run_status(run.status),
                           f"  {run.status_reason}" if run.status_reason else "")]
    facts = [f"mode {mode_name(run.mode)}", f"account {run.account or '(default)'}",
             f"created {when(run.created_at)}"]
    if run.HasField("finished_at"):
        facts.append(f"finished {when(run.finished_at)}")
    else:
        facts.append(f"deadline {when(run.deadline_at)}")
    if run.submitted_by:
        facts.append(f"by {run.submitted_by}")
    lines.append(Text("  ".join(facts), style="dim"))

    table = Table(show_edge=False, pad_edge=False)
    for column, justify in (("client order id / exec id", "left"), ("side", "left"), ("symbol", "left"),
                            ("state", "left"), ("filled/total", "right"), ("price", "right"),
                            ("commission", "right"), ("IB order id", "right")):
        table.add_column(column, justify=justify)  # type: ignore[arg-type]
    for order in run.orders:
        commissions = [f.commission for f in order.fills if f.HasField("commission") and not f.superseded_by]
        currency = next((f.commission_currency for f in order.fills if f.commission_currency), "")
        state = styled_order_status(order.status)
        if order.status_reason:
            state.append(f" {order.status_reason}", style="dim")
        table.add_row(order.spec.client_order_id, side_name(order.spec.side), order.spec.symbol, state,
                      f"{quantity(order.filled_quantity)}/{quantity(order.spec.quantity)}",
                      price(optional(order, "avg_fill_price")),
                      money(sum(commissions), currency) if commissions else "", str(order.ib_order_id or ""))
        for fill in order.fills:
            note = f" (superseded by {fill.superseded_by})" if fill.superseded_by else ""
            table.add_row(Text(f"  └ {fill.exec_id}{note}", style="dim"), "", Text(fill.exchange, style="dim"),
                          Text(when(fill.trade_time), style="dim"), quantity(fill.quantity), price(fill.price),
                          money(optional(fill, "commission"), fill.commission_currency), "")
    return Group(*lines, table)


def cancel_view(response: pb.CancelRunResponse) -> RenderableType:
    head = Text.assemble(("run ", ""), (response.run.run_id, "bold"), "  ", styled_run_status(response.run.status))
    table = Table(show_edge=False, pad_edge=False)
    for column in ("client order id", "IB order id", "state", "IB code", "IB's answer"):
        table.add_column(column, justify="right" if column in ("IB order id", "IB code") else "left")
    for outcome in response.outcomes:
        table.add_row(outcome.client_order_id, str(outcome.ib_order_id or ""), styled_order_status(outcome.status),
                      str(outcome.ib_code or ""), outcome.message)
    return Group(head, table)
