"""The settings of the account guard and the pre-trade limits, as the engine and service take them."""

from __future__ import annotations

from execgw.server.config import Settings
from execgw.server.engine.account_guard import AccountGuard
from execgw.server.engine.limits import ModeLimits, PreTradeLimits


def account_guard_of(settings: Settings) -> AccountGuard:
    return AccountGuard(allowed={"paper": frozenset(settings.paper_accounts), "live": frozenset(settings.live_accounts)})


def pre_trade_limits_of(settings: Settings) -> PreTradeLimits:
    return PreTradeLimits(
        per_mode={
            "paper": ModeLimits(settings.paper_max_order_quantity, settings.paper_max_orders_per_run),
            "live": ModeLimits(settings.live_max_order_quantity, settings.live_max_orders_per_run),
        },
        symbol_allowlist=frozenset(settings.symbol_allowlist),
        symbol_denylist=frozenset(settings.symbol_denylist),
        live_requires_confirmation=settings.live_requires_confirmation,
        max_runs_per_minute_per_caller=settings.max_runs_per_minute_per_caller,
        max_open_runs=settings.max_open_runs,
    )
