"""One gateway's metrics: its own registry (never prometheus_client's global one: a process may
run several gateways, the tests do), the bus observer, the hooks the service calls, the outage
count, and the HTTP server. Created only when `metrics_listen` is set."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.orm import Session

from execgw.server.db.models import TradeRun
from execgw.server.engine.bus import EventBus
from execgw.server.engine.engine import ExecutionEngine
from execgw.server.engine.store import Store, WriterTimes
from execgw.server.engine.stored_event import StoredEvent
from execgw.server.metrics.activity import TradingActivity
from execgw.server.metrics.buckets import BATCH_SIZES, SECONDS, LoopHistogram
from execgw.server.metrics.collector import GatewayCollector
from execgw.server.metrics.exposition import MetricsServer
from execgw.server.metrics.hooks import ServiceMetrics
from execgw.server.metrics.outages import OutageWatch

if TYPE_CHECKING:
    from execgw.server.api.service import ExecutionService

log = logging.getLogger(__name__)

_EPOCH = datetime(1970, 1, 1)  # stored_at is naive UTC; seconds since this are time.time()'s
LOOKUP_CHUNK = 500  # run ids per IN (...) when the modes of unnamed runs are read


class GatewayMetrics:
    def __init__(self, bus: EventBus) -> None:
        self.registry = CollectorRegistry()
        self.activity = TradingActivity()
        bus.observe(self.activity)  # before anything commits: every event is counted
        self.deliveries = {("live",): LoopHistogram(SECONDS), ("replay",): LoopHistogram(SECONDS)}
        self.writer_batches = LoopHistogram(BATCH_SIZES)
        self.writer_legs = {(leg,): LoopHistogram(SECONDS) for leg in WriterTimes._fields}
        self.outages = OutageWatch()
        self.service = _RecordingServiceMetrics(self)
        self.engine: ExecutionEngine | None = None
        self.open_watch_streams: Callable[[], int] | None = None
        self._server = MetricsServer(self.registry)
        self.registry.register(GatewayCollector(self))

    def serve(self, listen: str) -> int:
        """Starts the HTTP server; returns its port. What is not attached yet is left out of a
        scrape until it is."""
        return self._server.start(listen)

    def attach_engine(self, engine: ExecutionEngine, store: Store) -> None:
        """On the loop, once the engine exists: its state is read at scrape time from here on."""
        self.engine = engine
        self.activity.use_lookup(lambda run_ids: _modes_of(store, run_ids))
        # Called by ReportIntake with each writer transaction's batch size.
        engine.reports.on_batch = self.writer_batches.observe
        engine.reports.database_listeners.append(self.outages.database_changed)
        store.on_transaction = self._writer_timed

    def _writer_timed(self, times: WriterTimes) -> None:
        for leg, seconds in zip(WriterTimes._fields, times, strict=True):
            self.writer_legs[(leg,)].observe(seconds)

    def attach_service(self, service: ExecutionService) -> None:
        self.open_watch_streams = lambda: service.open_watch_streams

    async def stop(self) -> None:
        await self.activity.stop()
        await self._server.stop()


class _RecordingServiceMetrics(ServiceMetrics):
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._activity = metrics.activity
        self._live, self._replay = metrics.deliveries[("live",)], metrics.deliveries[("replay",)]

    def run_admitted(self, run_id: str, mode: str) -> None:
        self._activity.learn(run_id, mode)

    def event_sent(self, event: StoredEvent, *, live: bool) -> None:
        # time.time() and a timedelta: a quarter of datetime.now()'s cost, once per event per stream.
        age = time.time() - (event.stored_at - _EPOCH).total_seconds()
        (self._live if live else self._replay).observe(max(age, 0.0))


async def _modes_of(store: Store, run_ids: Collection[str]) -> dict[str, str]:
    """run id → mode, for runs SubmitRun did not name (resumed after a restart); on the readers' pool."""
    wanted = list(run_ids)

    def query(session: Session) -> dict[str, str]:
        found: dict[str, str] = {}
        for start in range(0, len(wanted), LOOKUP_CHUNK):
            chunk = wanted[start:start + LOOKUP_CHUNK]
            rows = session.execute(select(TradeRun.id, TradeRun.mode).where(TradeRun.id.in_(chunk)))
            found.update({row[0]: row[1] for row in rows})
        return found

    return await store.read(query)
