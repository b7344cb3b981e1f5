"""Declarative scenarios: how the simulated TWS treats each order and when it misbehaves.

The same structure comes from a JSON or TOML file (``execgw sim --scenario FILE``) or from
Python (``Scenario.from_dict({...})`` or the dataclasses directly)::

    {
      "default": {"fills": 1},
      "symbols": {"MSFT": {"outcome": "reject", "reject_reason": "No trading permissions"}},
      "orders":  {"run-7-*": {"fills": 3, "fill_interval": 0.2, "correction": 0.05}},
      "prices":  {"AAPL": 190.0},
      "drops":   [{"after_messages": 12, "client_id": 1}],
      "outages": [{"at": 5.0, "duration": 2.0, "next_valid_id": 1}],
      "connectivity": [{"at": 3.0, "duration": 1.0, "restored_code": 1101}]
    }

An order's behaviour is the first match of: its orderRef in ``orders`` (glob patterns allowed),
its symbol in ``symbols``, then ``default``; ``orders``/``symbols`` entries override ``default``
field by field.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

Outcome = Literal["fill", "reject", "rest"]
CommissionTiming = Literal["after", "before", "delayed", "never"]


@dataclass(frozen=True)
class OrderBehaviour:
    """What happens to one order, in IB's words."""

    outcome: Outcome = "fill"
    """fill; reject (error 201 then Inactive); rest (working until cancelled or released)."""
    fills: int = 1
    """Executions the order's quantity is split into (partial fills when more than one)."""
    fill_delay: float = 0.0
    """Seconds from the acknowledgement to the first execution."""
    fill_interval: float = 0.0
    """Seconds between executions of one order; 0 sends them back to back (a flood)."""
    ack_delay: float = 0.0
    """Seconds before TWS acknowledges the order (a cancel meanwhile gives ApiCancelled)."""
    reject_reason: str = "Simulated rejection"
    price: float | None = None
    """A fixed execution price instead of the symbol's simulated market."""
    duplicate_exec_details: bool = False
    duplicate_order_status: bool = False
    correction: float | None = None
    """Correct the last execution by this price change (execId ``.01`` → ``.02``)."""
    correction_delay: float = 0.0
    commission: CommissionTiming = "after"
    """after its execution (as IB), before it, delayed by commission_delay, or never sent."""
    commission_delay: float = 0.0
    late_fill: bool = False
    """A cancel that arrives before the fill is answered too late: the order fills, then 10148."""

    def __post_init__(self) -> None:
        if self.outcome not in ("fill", "reject", "rest"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.commission not in ("after", "before", "delayed", "never"):
            raise ValueError(f"unknown commission timing {self.commission!r}")
        if self.fills < 1:
            raise ValueError("fills must be at least 1")
        for name in ("fill_delay", "fill_interval", "ack_delay", "correction_delay", "commission_delay"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")


@dataclass(frozen=True)
class Drop:
    """Close client sockets: after a client was sent ``after_messages`` messages (counting the five
    sent at START_API: accounts, nextValidId, three farm notices), or ``at`` seconds after the
    simulator started. Applies once, to ``client_id`` or to every client."""

    after_messages: int | None = None
    at: float | None = None
    client_id: int | None = None

    def __post_init__(self) -> None:
        if (self.after_messages is None) == (self.at is None):
            raise ValueError("a drop needs exactly one of after_messages and at")


@dataclass(frozen=True)
class Outage:
    """A Gateway restart: at ``at`` seconds every client is dropped and connections are refused for
    ``duration`` seconds; it may come back with a lower ``next_valid_id``."""

    at: float
    duration: float
    next_valid_id: int | None = None


@dataclass(frozen=True)
class ConnectivityLoss:
    """Error 1100 at ``at`` seconds, then ``restored_code`` (1101 data lost, 1102 data kept) after
    ``duration``. While lost, order events for clients are held; 1101 discards them."""

    at: float
    duration: float
    restored_code: int = 1102

    def __post_init__(self) -> None:
        if self.restored_code not in (1101, 1102):
            raise ValueError("restored_code must be 1101 or 1102")


@dataclass(frozen=True)
class Scenario:
    default: OrderBehaviour = field(default_factory=OrderBehaviour)
    symbols: dict[str, OrderBehaviour] = field(default_factory=dict)
    orders: dict[str, OrderBehaviour] = field(default_factory=dict)
    prices: dict[str, float] = field(default_factory=dict)
    """Reference price per symbol; others get a stable price derived from the symbol."""
    accounts: list[str] = field(default_factory=list)
    first_order_id: int = 1
    max_messages_per_second: int = 50
    """IB's pacing limit on client messages; 0 turns pacing off."""
    pacing_violations_before_disconnect: int = 3
    """Consecutive seconds over the limit after which the client is disconnected."""
    commission_per_share: float = 0.005
    min_commission: float = 1.0
    master_client_id: int | None = None
    """Client id that also sees other clients' executions in reqExecutions."""
    drops: list[Drop] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    connectivity: list[ConnectivityLoss] = field(default_factory=list)

    def behaviour_for(self, order_ref: str, symbol: str) -> OrderBehaviour:
        if order_ref in self.orders:
            return self.orders[order_ref]
        for pattern, behaviour in self.orders.items():
            if fnmatch.fnmatchcase(order_ref, pattern):
                return behaviour
        return self.symbols.get(symbol.upper(), self.symbols.get(symbol, self.default))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scenario:
        """Build from plain data (a parsed JSON/TOML file); unknown keys are errors."""
        data = dict(data)
        default = _build(OrderBehaviour, data.pop("default", {}), "default")
        default_values = dataclasses.asdict(default)

        def override(where: str, entries: dict[str, Any]) -> dict[str, OrderBehaviour]:
            return {
                key: _build(OrderBehaviour, {**default_values, **value}, f"{where}.{key}")
                for key, value in entries.items()
            }

        symbols = override("symbols", data.pop("symbols", {}))
        return cls(
            default=default,
            symbols={key.upper(): value for key, value in symbols.items()},
            orders=override("orders", data.pop("orders", {})),
            drops=[_build(Drop, d, "drops") for d in data.pop("drops", [])],
            outages=[_build(Outage, d, "outages") for d in data.pop("outages", [])],
            connectivity=[_build(ConnectivityLoss, d, "connectivity") for d in data.pop("connectivity", [])],
            **_check_keys(cls, data, "scenario"),
        )

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        """Read a ``.json`` or ``.toml`` scenario file."""
        path = Path(path)
        if path.suffix.lower() == ".toml":
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        elif path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            raise ValueError(f"{path}: a scenario file ends in .json or .toml")
        if not isinstance(data, dict):
            raise ValueError(f"{path}: a scenario is a table/object at the top level")
        return cls.from_dict(data)


T = TypeVar("T")


def _check_keys(cls: type, data: dict[str, Any], where: str) -> dict[str, Any]:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return data


def _build(cls: type[T], data: Any, where: str) -> T:
    if not isinstance(data, dict):
        raise ValueError(f"{where}: expected a table/object, got {type(data).__name__}")
    try:
        return cls(**_check_keys(cls, data, where))
    except TypeError as exc:
        raise ValueError(f"{where}: {exc}") from None
