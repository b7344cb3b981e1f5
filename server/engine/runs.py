"""The engine's vocabulary: what can go wrong with a command, how long the engine waits for
IB, and what it keeps about a run while the run is open."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any


class NotConnected(Exception):
    """The IB endpoint of the requested mode is down: nothing was written or sent."""


class ModeNotConfigured(Exception):
    pass


class EndpointReadOnly(Exception):
    """TWS / IB Gateway of this mode runs with its "Read-Only API" setting: orders are refused."""

    def __init__(self, mode: str, ib_message: str) -> None:
        super().__init__(mode)
        self.mode = mode
        self.ib_message = ib_message


class DatabaseUnavailable(Exception):
    """The database is not taking writes; IB's events are held until it is back."""


class ClientOrderIdConflict(Exception):
    def __init__(self, client_order_id: str, detail: str) -> None:
        super().__init__(f"client_order_id {client_order_id!r} {detail}")
        self.client_order_id = client_order_id


class RunNotFound(Exception):
    pass


@dataclass(frozen=True)
class EngineTimings:
    cancel_wait: float = 10.0  # how long to wait for IB to answer cancels
    reconcile_timeout: float = 15.0  # how long IB may stay quiet on a request before we call it failed (answers.py)
    commission_grace: float = 3.0  # how long a finished run waits for missing commissions
    retry_interval: float = 2.0  # between attempts to finish a run IB could not be asked about
    max_held_events: int = 100_000  # IB events held while the database is down; beyond: reconcile
    max_decoded_reports: int = 500  # IB reports decoded and not yet applied before ibapi's decoding waits


@dataclass
class CancelOutcome:
    client_order_id: str
    ib_order_id: int
    status: str
    ib_code: int
    message: str


@dataclass
class OpenRun:
    """What the engine keeps about an open run; forgotten when the run finishes."""

    timer: asyncio.TimerHandle | None = None
    cancelled_by_caller: bool = False
    finishing: asyncio.Task[Any] | None = None
    cancel_answers: dict[tuple[str | None, int], tuple[int, str]] = field(default_factory=dict)
    # Once the run ends (deadline, cancel), orders still waiting for their pacing slot are
    # withdrawn instead of sent; `sent` are the IB order ids this process wrote to the socket.
    sending_stopped: bool = False
    sent: set[int] = field(default_factory=set)
