"""An IB endpoint: one TWS / IB Gateway socket and the client id used on it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Endpoint:
    """Where one trading mode's TWS / IB Gateway listens, and the client id we use there."""

    mode: str
    host: str
    port: int
    client_id: int
    time_zone: str = "America/New_York"
    """The TWS login time zone (IANA name): local execution times and IB's day are in it."""

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"
