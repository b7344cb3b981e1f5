"""Following a run as it happens: ``RunProgress`` folds events into per-order state, and
``follow_run`` shows it live on a terminal or as one plain line per event elsewhere."""

from __future__ import annotations

from dataclasses import dataclass, field

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from execgw.client.client import ExecGwClient
from execgw.client.render import (
    describe_event,
    money,
    optional,
    order_status_name,
    price,
    quantity,
    run_status_name,
    side_name,
    styled_order_status,
    styled_run_status,
    when,
)
from execgw.v1 import execution_pb2 as pb


@dataclass
class OrderProgress:
    client_order_id: str
    side: str = "?"
    symbol: str = "?"
    total: float = 0.0
    status: int = pb.ORDER_STATUS_UNSPECIFIED
    filled: float = 0.0
    avg_price: float | None = None
    reason: str = ""
    # exec id -> commission; a commission report repeated for an exec id replaces the earlier one.
    commissions: dict[str, float] = field(default_factory=dict)
    currency: str = ""
    superseded: set[str] = field(default_factory=set)

    @property
    def commission_total(self) -> float | None:
        current = [c for exec_id, c in self.commissions.items() if exec_id not in self.superseded]
        return sum(current) if current else None


@dataclass
class RunProgress:
    """What a watcher knows about a run: each order's state and the run's status."""

    run_id: str
    status: int = pb.RUN_STATUS_UNSPECIFIED
    reason: str = ""
    final: bool = False
    last_sequence: int = 0
    orders: dict[str, OrderProgress] = field(default_factory=dict)
    heartbeat_at: str = ""

    @classmethod
    def from_run(cls, run: pb.Run, *, with_state: bool) -> RunProgress:
        """Orders (side, symbol, quantity) from ``run``; their state too when ``with_state`` (when
        resuming after a sequence, as the replayed events won't rebuild what came before)."""
        progress = cls(run.run_id)
        for order in run.orders:
            line = OrderProgress(order.spec.client_order_id, side_name(order.spec.side), order.spec.symbol,
                                 order.spec.quantity)
            if with_state:
                line.status, line.filled = order.status, order.filled_quantity
                line.avg_price, line.reason = optional(order, "avg_fill_price"), order.status_reason
                for fill in order.fills:
                    if fill.HasField("commission"):
                        line.commissions[fill.exec_id] = fill.commission
                        line.currency = fill.commission_currency
                    if fill.superseded_by:
                        line.superseded.add(fill.exec_id)
            progress.orders[line.client_order_id] = line
        if with_state:
            progress.status, progress.reason = run.status, run.status_reason
            progress.final = run.HasField("finished_at")
        return progress

    def order(self, client_order_id: str) -> OrderProgress:
        # An order the snapshot did not have (should not happen) still gets a line.
        return self.orders.setdefault(client_order_id, OrderProgress(client_order_id))

    def apply(self, event: pb.RunEvent) -> None:
        self.last_sequence = max(self.last_sequence, event.sequence)
        kind = event.WhichOneof("event")
        if kind == "order_status":
            change = event.order_status
            line = self.order(change.client_order_id)
            line.status, line.filled = change.status, change.filled_quantity
            line.total = line.total or change.filled_quantity + change.remaining_quantity
            line.avg_price = optional(change, "avg_fill_price")
            line.reason = change.reason
        elif kind == "fill":
            line = self.order(event.fill.client_order_id)
            line.filled, line.avg_price = event.fill.order_filled_quantity, event.fill.order_avg_fill_price
            if event.fill.corrects_exec_id:
                line.superseded.add(event.fill.corrects_exec_id)
        elif kind == "commission":
            line = self.order(event.commission.client_order_id)
            line.commissions[event.commission.exec_id] = event.commission.commission
            line.currency = event.commission.currency
        elif kind == "run_status":
            self.status, self.reason, self.final = (
                event.run_status.status, event.run_status.reason, event.run_status.final)

    def summary(self) -> str:
        text = f"run {self.run_id} {run_status_name(self.status)}"
        return f"{text}: {self.reason}" if self.reason else text

    def view(self) -> RenderableType:
        table = Table(show_edge=False, pad_edge=False)
        for column, justify in (("client order id", "left"), ("side", "left"), ("symbol", "left"),
                                ("state", "left"), ("filled/total", "right"), ("avg price", "right"),
                                ("commission", "right")):
            table.add_column(column, justify=justify)  # type: ignore[arg-type]
        for line in self.orders.values():
            state = styled_order_status(line.status) if line.status else Text("-")
            if line.reason and order_status_name(line.status) in ("REJECTED", "CANCELLED", "INACTIVE"):
                state.append(f" {line.reason}", style="dim")
            table.add_row(line.client_order_id, line.side, line.symbol, state,
                          f"{quantity(line.filled)}/{quantity(line.total)}", price(line.avg_price),
                          money(line.commission_total, line.currency))
        head = Text.assemble("run ", (self.run_id, "bold"), "  ",
                             styled_run_status(self.status) if self.status else Text("waiting"),
                             f"  {self.reason}" if self.reason else "",
                             (f"  (gateway alive {self.heartbeat_at})" if self.heartbeat_at else "", "dim"))
        return Group(head, table)


def follow_run(client: ExecGwClient, console: Console, run_id: str, *, after_sequence: int = 0,
               progress: RunProgress | None = None, transient: bool = False) -> RunProgress:
    """Watches the run to its end, showing it on ``console``; returns what was seen.

    A terminal gets a live table of the orders with the event log scrolling above it; anything else
    (a pipe, a file, CI) gets one plain line per event and a closing status line. On error the
    exception propagates and ``progress.last_sequence`` says where to resume. ``transient`` clears the
    live table at the end (the log and the closing line stay).
    """
    if progress is None:
        progress = RunProgress.from_run(client.get(run_id), with_state=after_sequence > 0)
    progress.last_sequence = max(progress.last_sequence, after_sequence)

    def heartbeat(beat: pb.Heartbeat) -> None:
        progress.heartbeat_at = when(beat.server_time, date=False)

    if console.is_terminal:
        with Live(progress.view(), console=console, auto_refresh=False, transient=transient) as live:
            def on_heartbeat(beat: pb.Heartbeat) -> None:
                heartbeat(beat)
                live.update(progress.view(), refresh=True)

            for event in client.watch(run_id, progress.last_sequence, on_heartbeat=on_heartbeat):
                progress.apply(event)
                live.console.print(Text(describe_event(event), style="dim"))
                live.update(progress.view(), refresh=True)
    else:
        for event in client.watch(run_id, progress.last_sequence, on_heartbeat=heartbeat):
            progress.apply(event)
            console.print(describe_event(event), soft_wrap=True)
    if not progress.final:
        # The stream ended without a final status on our screen (e.g. resumed past it): ask.
        run = client.get(run_id)
        progress.status, progress.reason = run.status, run.status_reason
        progress.final = run.HasField("finished_at")
    console.print(Text(progress.summary(), style="bold"), soft_wrap=True)
    return progress
