"""What the gRPC service tells the metrics. This base does nothing: it is what the service holds
when metrics are off, so the service never asks whether they are on. `GatewayMetrics` hands it
one that records."""

from __future__ import annotations

from execgw.server.engine.stored_event import StoredEvent


class ServiceMetrics:
    def run_admitted(self, run_id: str, mode: str) -> None:
        """SubmitRun answered with this run (new or existing): its events count under `mode`."""

    def event_sent(self, event: StoredEvent, *, live: bool) -> None:
        """A WatchRun stream hands `event` to gRPC; `live` from the bus, else replayed from the
        database."""
