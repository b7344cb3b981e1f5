"""The writer's in-memory copies of the rows it changes: runs, orders and fills.

They hold only the columns the recorder reads or changes, and what it derives from them (an
order's current fills and their totals). The ledger keeps them between transactions; the
recorder changes them and has the changes written. Only the writer thread ever touches them:
nothing of them is handed to the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from execgw.server.engine import state


@dataclass(slots=True, eq=False)
class RunEntry:
    id: str
    status: str
    status_reason: str | None
    last_sequence: int
    finished_at: datetime | None
    # The run's orders the ledger holds, by row id; `all_orders` once every one of them is there.
    orders: dict[int, OrderEntry] = field(default_factory=dict)
    all_orders: bool = False
    # The ledger's transaction count when the run was last used: the least recently used runs
    # are the ones forgotten when the ledger grows past its bounds.
    used: int = 0


@dataclass(slots=True, eq=False)
class FillEntry:
    order_id: int
    exec_id: str
    filled_qty: float
    price: float
    commission: float | None
    commission_currency: str | None
    realized_pnl: float | None
    superseded_by: str | None


@dataclass(slots=True, eq=False)
class OrderEntry:
    id: int
    run: RunEntry
    client_order_id: str
    ib_endpoint: str | None
    ib_client_id: int | None
    ib_order_id: int | None
    ib_perm_id: int | None
    quantity: float
    status: str
    filled_qty: float
    avg_fill_price: float | None
    status_reason: str | None
    last_status_ts: datetime | None
    created_at: datetime | None
    # The order's fills, loaded the first time an execution or commission needs them: by exec
    # base, the one that counts (not superseded); and the exact sums of those.
    fills_loaded: bool = False
    current: dict[str, FillEntry] = field(default_factory=dict)
    shares: Decimal = Decimal(0)
    notional: Decimal = Decimal(0)

    @property
    def run_id(self) -> str:
        return self.run.id

    def count_in(self, fill: FillEntry) -> None:
        """A fill that now counts: its shares and notional join the order's sums (exact decimals:
        0.1 + 0.2 shares is 0.3)."""
        shares = state.as_shares(fill.filled_qty)
        self.shares += shares
        self.notional += shares * state.as_shares(fill.price)

    def count_out(self, fill: FillEntry) -> None:
        """A fill superseded by its correction: it no longer counts."""
        shares = state.as_shares(fill.filled_qty)
        self.shares -= shares
        self.notional -= shares * state.as_shares(fill.price)
