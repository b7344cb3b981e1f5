"""Orders as a caller writes them: the ``Order`` dataclass, client order ids, and reading orders
from command-line arguments (``BUY:AAPL:10``) or files (JSON, CSV)."""

from __future__ import annotations

import csv
import json
import math
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from execgw.v1 import execution_pb2 as pb

SIDES = {"BUY": pb.ORDER_SIDE_BUY, "SELL": pb.ORDER_SIDE_SELL}
# Names the JSON/CSV files may use: the OrderSpec field names of the contract.
SPEC_FIELDS = ("client_order_id", "symbol", "side", "quantity", "sec_type", "exchange",
               "primary_exchange", "currency", "order_type")


class OrderFormatError(ValueError):
    """An order argument or file could not be read; the message says where and why."""


def new_client_order_id(prefix: str = "") -> str:
    """A fresh client order id, ``<prefix><32 hex digits>`` (uuid4).

    Make it once per order and keep it: resubmitting with the same id is what makes a retry safe.
    """
    return f"{prefix}{uuid.uuid4().hex}"


@dataclass(frozen=True)
class Order:
    """One market order. ``side`` is "BUY" or "SELL"; blank optional fields take IB's defaults."""

    client_order_id: str
    symbol: str
    side: str
    quantity: float
    sec_type: str = "STK"
    exchange: str = "SMART"
    primary_exchange: str = ""
    currency: str = "USD"

    @classmethod
    def new(cls, side: str, symbol: str, quantity: float, **optional: str) -> Order:
        """An order with a fresh client order id (see ``new_client_order_id``)."""
        return cls(new_client_order_id(), symbol, side, quantity, **optional)

    def to_spec(self) -> pb.OrderSpec:
        side = SIDES.get(self.side.upper())
        if side is None:
            raise ValueError(f"side must be BUY or SELL, got {self.side!r}")
        return pb.OrderSpec(
            client_order_id=self.client_order_id,
            symbol=self.symbol,
            side=side,
            quantity=self.quantity,
            sec_type=self.sec_type,
            exchange=self.exchange,
            primary_exchange=self.primary_exchange,
            currency=self.currency,
            order_type="MKT",
        )


def parse_order_arg(text: str) -> Order:
    """``SIDE:SYMBOL:QUANTITY[:CLIENT_ORDER_ID]``, e.g. ``BUY:AAPL:10`` or ``sell:MSFT:5:rebal-7``."""
    parts = text.split(":", 3)
    if len(parts) < 3 or not all(parts[:3]):
        raise OrderFormatError(f"order {text!r}: expected SIDE:SYMBOL:QUANTITY[:CLIENT_ORDER_ID], e.g. BUY:AAPL:10")
    side, symbol, quantity = parts[:3]
    client_order_id = parts[3] if len(parts) == 4 else ""
    return _order(f"order {text!r}", {"side": side, "symbol": symbol, "quantity": quantity,
                                       "client_order_id": client_order_id})


def load_orders_file(path: str | Path) -> list[Order]:
    """Orders from ``.json`` (a list of objects with OrderSpec field names) or ``.csv`` (header
    ``side,symbol,quantity`` plus any other OrderSpec field names, e.g. ``client_order_id``)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets save CSV with a BOM
    except OSError as exc:
        raise OrderFormatError(f"{path}: cannot read: {exc.strerror or exc}") from exc
    suffix = path.suffix.lower()
    if suffix == ".json":
        rows = _json_rows(path, text)
    elif suffix == ".csv":
        rows = _csv_rows(path, text)
    else:
        raise OrderFormatError(f"{path}: expected a .json or .csv file")
    if not rows:
        raise OrderFormatError(f"{path}: no orders")
    return [_order(where, row) for where, row in rows]


def _json_rows(path: Path, text: str) -> list[tuple[str, Mapping[str, Any]]]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise OrderFormatError(f"{path}: not valid JSON: {exc}") from exc
    if not isinstance(data, list):
        raise OrderFormatError(f"{path}: expected a JSON list of orders")
    rows = []
    for index, item in enumerate(data):
        if not isinstance(item, dict):
            raise OrderFormatError(f"{path}: order [{index}]: expected an object")
        rows.append((f"{path}: order [{index}]", item))
    return rows


def _csv_rows(path: Path, text: str) -> list[tuple[str, Mapping[str, Any]]]:
    reader = csv.DictReader(text.splitlines())
    header = [name.strip() for name in reader.fieldnames or []]
    missing = [name for name in ("side", "symbol", "quantity") if name not in header]
    if missing:
        raise OrderFormatError(f"{path}: header must include side,symbol,quantity (missing {','.join(missing)})")
    reader.fieldnames = header
    # Line numbers as an editor shows them: the header is line 1.
    return [(f"{path}: line {reader.line_num}", row) for row in reader if any((v or "").strip() for v in row.values())]


def _order(where: str, row: Mapping[str, Any]) -> Order:
    unknown = sorted(set(row) - set(SPEC_FIELDS))
    if unknown:
        raise OrderFormatError(f"{where}: unknown field(s) {', '.join(map(str, unknown))}; "
                               f"known: {', '.join(SPEC_FIELDS)}")
    values = {key: "" if value is None else value for key, value in row.items()}
    for name in ("side", "symbol", "quantity"):
        if str(values.get(name, "")).strip() == "":
            raise OrderFormatError(f"{where}: {name} is required")
    side = str(values["side"]).strip().upper().removeprefix("ORDER_SIDE_")
    if side not in SIDES:
        raise OrderFormatError(f"{where}: side must be BUY or SELL, got {values['side']!r}")
    quantity = _quantity(where, values["quantity"])
    order_type = str(values.pop("order_type", "")).strip().upper()
    if order_type not in ("", "MKT"):
        raise OrderFormatError(f"{where}: only market orders (MKT) are supported, got {order_type!r}")
    optional = {f.name: str(values[f.name]).strip() for f in fields(Order)
                if f.name in values and f.name not in ("client_order_id", "symbol", "side", "quantity")
                and str(values[f.name]).strip()}
    client_order_id = str(values.get("client_order_id", "")).strip() or new_client_order_id()
    return Order(client_order_id, str(values["symbol"]).strip(), side, quantity, **optional)


def _quantity(where: str, raw: Any) -> float:
    if isinstance(raw, bool):
        raise OrderFormatError(f"{where}: quantity must be a number, got {raw!r}")
    try:
        quantity = float(raw)
    except (TypeError, ValueError):
        raise OrderFormatError(f"{where}: quantity must be a number, got {raw!r}") from None
    # Zero and negatives are left to the gateway, which names the field; NaN/inf never make sense.
    if not math.isfinite(quantity):
        raise OrderFormatError(f"{where}: quantity must be finite, got {raw!r}")
    return quantity


def order_specs(orders: Iterable[Order | pb.OrderSpec]) -> list[pb.OrderSpec]:
    """OrderSpec messages for a mix of ``Order`` and ready-made ``pb.OrderSpec``."""
    return [order if isinstance(order, pb.OrderSpec) else order.to_spec() for order in orders]
