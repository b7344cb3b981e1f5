"""Which IB accounts a run may trade: paper and live kept apart, and an allowlist per endpoint.

On every connect IB says which accounts the login manages (managedAccounts, kept by the session
as `IBSession.accounts`). A paper endpoint must report paper accounts only, a live endpoint live
accounts only; otherwise the endpoint is refused whole (a hostile or mis-pointed TWS had a paper
run booked to the live account U1234567). Then each run's account must be one IB reports and,
when the endpoint has an allowlist, one of those.

How paper accounts are told apart: IB numbers paper accounts "DU…" and the paper master of an
advisor or broker structure "DF…" (live: "U…" for accounts, "F…" for advisor masters). This is
IB's numbering as the API's users rely on it, not a documented API contract: QuantConnect Lean
reads "F" anywhere in an id as an advisor master so that both F… and DF… match
(https://github.com/QuantConnect/Lean, Brokerages/InteractiveBrokers/InteractiveBrokersBrokerage.cs,
`IsMasterAccount`); vnpy users report advisor accounts as "F…" over "U…" client accounts
(https://github.com/vnpy/vnpy/issues/590); IB API users' own guards refuse to trade unless
every managed account starts with "DU" on paper. No page of IB's API reference that states the
numbering was found, hence the fail-safe rules:
An id with any other start is taken as live: a paper endpoint refuses it, which fails safe.
An id IB would not write (lower case, spaces, anything but A-Z and 0-9) is refused on either
endpoint: "du7654321" is no live account a live endpoint may trade, yet only "DU…" read as paper,
so a TWS reporting it (hostile, or an API layer that rewrote it) had live runs booked to it.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

PAPER_ACCOUNT_PREFIXES = ("DU", "DF")
IB_SPELLING = re.compile(r"[A-Z0-9]+")


def is_paper_account(account: str) -> bool:
    """An IB paper account (DU…) or paper advisor/broker master (DF…)."""
    return account.startswith(PAPER_ACCOUNT_PREFIXES)


def spelled_as_ib_does(account: str) -> bool:
    """Upper-case letters and digits only, as IB writes every account id."""
    return IB_SPELLING.fullmatch(account) is not None


class EndpointAccountsMismatch(Exception):
    """The IB endpoint of this mode reports accounts of the other kind: nothing trades there."""

    def __init__(self, mode: str, accounts: tuple[str, ...], reason: str) -> None:
        super().__init__(reason)
        self.mode = mode
        self.accounts = accounts
        self.reason = reason


class AccountRefused(Exception):
    """The run's account is not one this endpoint may trade (or none was named where IB would
    have to choose one): nothing was written or sent."""

    def __init__(self, mode: str, reason: str) -> None:
        super().__init__(reason)
        self.mode = mode
        self.reason = reason


@dataclass(frozen=True)
class AccountGuard:
    # mode → accounts runs may name there; empty (or absent) = any account IB reports.
    allowed: Mapping[str, Collection[str]] = field(default_factory=dict)

    def endpoint_mismatch(self, mode: str, accounts: tuple[str, ...]) -> str | None:
        """Why the endpoint of `mode` must not trade with what IB reported, or None."""
        if not accounts:
            return (f"IB {mode} endpoint reported no managed accounts, so it cannot be shown to be a "
                    f"{mode} login; refusing to trade there")
        misspelled = [a for a in accounts if not spelled_as_ib_does(a)]
        if misspelled:
            # Quoted: a space or a lower-case letter is what is wrong, and must show.
            return (f"IB {mode} endpoint reports account(s) {', '.join(repr(a) for a in misspelled)} that IB "
                    f"would not write (IB account ids are upper-case letters and digits), so they cannot be "
                    f"shown to be {mode} accounts (managedAccounts: {', '.join(repr(a) for a in accounts)}); "
                    f"check what ib_{mode} points at. Nothing is traded there until it reports only {mode} "
                    "accounts")
        if mode == "paper":
            wrong = [a for a in accounts if not is_paper_account(a)]
            kind = "live (not DU/DF)"
        else:
            wrong = [a for a in accounts if is_paper_account(a)]
            kind = "paper (DU/DF)"
        if not wrong:
            return None
        return (f"IB {mode} endpoint reports {kind} account(s) {', '.join(wrong)} "
                f"(managedAccounts: {', '.join(accounts)}); check which TWS / IB Gateway login "
                f"ib_{mode} points at. Nothing is traded there until it reports only {mode} accounts")

    def refuse_run_account(self, mode: str, requested: str, reported: tuple[str, ...]) -> None:
        """Raises AccountRefused unless `requested` is an account this endpoint may trade."""
        allowed = tuple(self.allowed.get(mode, ()))
        if not requested:
            # IB books an order without an account to the login's default account: with several
            # accounts that is IB's choice, not the caller's, so the caller must name one.
            if len(reported) != 1:
                raise AccountRefused(mode, f"IB {mode} endpoint manages {len(reported)} accounts "
                                           f"({', '.join(reported)}); name the one to book the run to")
            requested = reported[0]
        if requested not in reported:
            raise AccountRefused(mode, f"{requested} is not an account the IB {mode} endpoint manages "
                                       f"({', '.join(reported) or 'none reported'})")
        if allowed and requested not in allowed:
            raise AccountRefused(mode, f"{requested} is not in the {mode}_accounts allowlist of this gateway")
