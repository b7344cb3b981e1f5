"""The simulated market: prices, commissions, venues, and the identifiers IB hands out.

Prices come from one seeded generator, so a test that places the same orders in the same order
gets the same prices on every run. permIds and execIds, like IB's, never repeat across sessions:
they start from the clock, so a simulator restarted beside a database that outlives it (the
gateway's embedded default) never reports an execId or permId that database already holds.
"""

from __future__ import annotations

import itertools
import random
import time
import zlib

from execgw.sim.scenario import Scenario

_highest_issued = [0]
"""The highest permId any simulator in this process issued."""


class Market:
    def __init__(self, scenario: Scenario, seed: int = 0) -> None:
        self._rng = random.Random(seed)
        self._prices: dict[str, float] = dict(scenario.prices)
        self._commission_per_share = scenario.commission_per_share
        self._min_commission = scenario.min_commission
        started_ms = time.time_ns() // 1_000_000 + seed
        if scenario.first_perm_id is None:
            # 32-bit by default: 1e9 + (ms of the start mod 1e6) * 1000 stays below 2**31.
            first = 1_000_000_000 + (started_ms % 1_000_000) * 1000
        else:
            # Exactly where asked; a simulator restarted in the same process (a Gateway restart
            # in a test) continues above what the last one issued, so permIds never repeat.
            first = max(scenario.first_perm_id, _highest_issued[0] + 1)
        self._perm_ids = itertools.count(first)
        # IB's execIds look like 0000e0d5.6553a1b2.01.01: a source, a sequence, a leg, a revision.
        self._exec_source = f"{started_ms & 0xFFFFFFFF:08x}"
        self._exec_seq = itertools.count(0x65000000 + self._rng.randrange(0x100000))

    def next_perm_id(self) -> int:
        perm_id = next(self._perm_ids)
        if perm_id > _highest_issued[0]:
            _highest_issued[0] = perm_id
        return perm_id

    def next_exec_id(self) -> str:
        return f"{self._exec_source}.{next(self._exec_seq):08x}.01.01"

    def price_of(self, symbol: str) -> float:
        """A stable reference price per symbol that drifts a little with every execution."""
        price = self._prices.get(symbol)
        if price is None:
            price = 20.0 + (zlib.crc32(symbol.encode()) % 48_000) / 100.0
        price = round(price * (1.0 + self._rng.uniform(-0.0005, 0.0005)), 2)
        self._prices[symbol] = price
        return price

    def commission_of(self, shares: float) -> float:
        """IB's fixed-rate shape: per share, with a minimum per execution."""
        return round(max(self._min_commission, self._commission_per_share * shares), 2)


def corrected_exec_id(exec_id: str) -> str:
    """The execId of a correction: same base, the last part one higher (…01.01 → …01.02)."""
    base, revision = exec_id.rsplit(".", 1)
    return f"{base}.{int(revision) + 1:02d}"


def split_quantity(quantity: float, parts: int) -> list[float]:
    """Split into ``parts`` executions of whole shares where possible, the remainder on the last."""
    parts = max(1, min(parts, int(quantity) if quantity >= 1 else 1))
    size = float(int(quantity // parts)) if quantity >= parts else quantity / parts
    sizes = [size] * (parts - 1)
    sizes.append(round(quantity - sum(sizes), 8))
    return sizes


def venue_of(exchange: str, sec_type: str) -> str:
    """Where a SMART-routed order executes; IB reports the venue, not SMART, in execDetails."""
    if exchange.upper() in ("", "SMART"):
        return "ISLAND" if sec_type in ("STK", "") else "SMART"
    return exchange
