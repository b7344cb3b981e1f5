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
      "connectivity": [{"at": 3.0, "duration": 1.0, "restored_code": 1101}],
      "profile": "current", "read_only": false, "market_open": true,
      "execution_time_format": "utc", "time_zone": "US/Eastern"
    }

An order's behaviour is the first match of: its orderRef in ``orders`` (glob patterns allowed),
its symbol in ``symbols``, then ``default``; ``orders``/``symbols`` entries override ``default``
field by field.

By default the simulator plays today's TWS / IB Gateway (10.x) toward a version-157 client; each
top-level setting below says what it changes and ``sim/README.md`` names the public source.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

Outcome = Literal["fill", "reject", "rest", "error"]
CommissionTiming = Literal["after", "before", "delayed", "never"]
Profile = Literal["current", "permissive"]
Handshake = Literal["answer", "silent"]
ExecutionTimeFormat = Literal["local", "utc", "zone"]
ERROR_STATUSES = (None, "Inactive", "Cancelled")


@dataclass(frozen=True)
class OrderBehaviour:
    """What happens to one order, in IB's words."""

    outcome: Outcome = "fill"
    """fill; reject (error 201 then Inactive); rest (working until cancelled or released);
    error (``error_code``/``error_message`` for the order id, then ``error_status`` if any)."""
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
    error_code: int = 0
    """With outcome error: the code TWS answers the order with (203, 10285, 201, ...)."""
    error_message: str = ""
    error_status: str | None = None
    """With outcome error: None = no status follows and no order exists at IB (size limits,
    missing permissions, fractional sizes); Inactive or Cancelled = openOrder/orderStatus follow."""
    warning_code: int | None = None
    """A warning sent for the order id right after its acknowledgement (399, 2109, 10349, ...);
    the order then lives on as the rest of its behaviour says."""
    warning_message: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in ("fill", "reject", "rest", "error"):
            raise ValueError(f"unknown outcome {self.outcome!r}")
        if self.outcome == "error" and not self.error_code:
            raise ValueError("outcome error needs an error_code")
        if self.error_status not in ERROR_STATUSES:
            raise ValueError(f"error_status must be one of {ERROR_STATUSES}, not {self.error_status!r}")
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
    """TWS's "Master API client ID": also gets other clients' order events and commissions live,
    and their executions in reqExecutions."""
    drops: list[Drop] = field(default_factory=list)
    outages: list[Outage] = field(default_factory=list)
    connectivity: list[ConnectivityLoss] = field(default_factory=list)
    profile: Profile = "current"
    """current: today's TWS refuses orders whose eTradeOnly (10268) or firmQuoteOnly (10269) is
    true, as ibapi 9.81's Order() defaults them; permissive: accepts them, as TWS did before 2022."""
    read_only: bool = False
    """TWS's "Read-Only API" setting: orders, cancels and open/completed-order requests get 321."""
    handshake: Handshake = "answer"
    """silent: read the client's API handshake and never answer (untrusted IP, unanswered dialog)."""
    execution_time_format: ExecutionTimeFormat = "utc"
    """execDetails time: local ``yyyymmdd  hh:mm:ss`` in ``time_zone``; utc ``yyyymmdd-hh:mm:ss``;
    zone ``yyyymmdd hh:mm:ss <time_zone>``."""
    time_zone: str = "US/Eastern"
    """The zone chosen at the TWS login (an IANA name): local and zone times, the handshake time."""
    first_perm_id: int | None = None
    """permIds start here (2**31 and above is allowed: IB's are 64-bit); None: a start-time-based
    32-bit value, so simulators started one after another never repeat one."""
    market_open: bool = True
    """False: a MKT order is acknowledged PreSubmitted with warning 399 and waits for the open
    (``Simulator.open_market()``)."""

    def __post_init__(self) -> None:
        choices = {"profile": ("current", "permissive"), "handshake": ("answer", "silent"),
                   "execution_time_format": ("local", "utc", "zone")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {getattr(self, name)!r}")
        try:
            ZoneInfo(self.time_zone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"time_zone {self.time_zone!r} is not a known IANA zone") from None
        if self.first_perm_id is not None and self.first_perm_id < 1:
            raise ValueError("first_perm_id must be positive")

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
