"""The pull collector: at every scrape, on the metrics thread, reads what the gateway holds at that
moment (IB sessions, the report intake, the reconciler, the watch slots) and the loop-side counts
of the bus observer, and builds the families. Nothing here runs on the event loop.

Reads from this thread are of ints, floats and bools the loop writes, and of dict copies made in
one step (`dict(...)`, one C call under the GIL), so a scrape never sees a dict mid-change.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily

from execgw.server.metrics.activity import TALLIES
from execgw.server.metrics.buckets import histogram_family

if TYPE_CHECKING:
    from execgw.server.metrics.gateway import GatewayMetrics

TALLY_HELP = {
    "orders_submitted": "Orders recorded in a run and queued for IB (PENDING_SUBMIT committed), by run mode",
    "orders_filled": "Order status changes to FILLED committed, by run mode",
    "orders_rejected": "Order status changes to REJECTED committed, by run mode",
    "orders_cancelled": "Order status changes to CANCELLED committed (by IB, a cancel, or withdrawn unsent), by run mode",
    "executions_stored": "Executions (fills) stored, each exec id once; a correction is one more, by run mode",
    "commissions_stored": "Commission reports stored or changed on an execution, by run mode",
}


class GatewayCollector:
    def __init__(self, metrics: GatewayMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        yield from self._ib()
        yield from self._trading()
        yield from self._intake()
        yield from self._reconciliations()
        yield from self._watchers()

    def _ib(self) -> Iterator[Metric]:
        engine = self._metrics.engine
        if engine is None:  # the first moments of start-up
            return
        connected = GaugeMetricFamily(
            "execgw_ib_connected", "1 while connected to the IB endpoint: handshake done, nextValidId received, "
            "linked to IB's servers (no 1100)", labels=["mode"])
        taking_orders = GaugeMetricFamily(
            "execgw_ib_taking_orders", "1 while connected and TWS takes API orders (not Read-Only) from accounts of "
            "the endpoint's kind: what health execgw.ib.<mode> says", labels=["mode"])
        connections = CounterMetricFamily(
            "execgw_ib_connections_total", "Connections made to the IB endpoint (the first and every reconnect)",
            labels=["mode"])
        pacing = SummaryMetricFamily(
            "execgw_pacing_wait_seconds", "Time outgoing IB requests waited for their pacing turn on the loop "
            "(count: turns taken)", labels=["mode"])
        for mode, session in sorted(dict(engine.sessions).items()):
            connected.add_metric([mode], 1.0 if session.ready else 0.0)
            taking_orders.add_metric([mode], 1.0 if engine.mode_ready(mode) else 0.0)
            connections.add_metric([mode], session.connections_made)
            pacer = session.pacing
            pacing.add_metric([mode], pacer.turns, pacer.waited_seconds)
        yield from (connected, taking_orders, connections, pacing)

    def _trading(self) -> Iterator[Metric]:
        metrics = self._metrics
        counts = metrics.activity.snapshot()
        engine = metrics.engine
        # Every configured mode shows, at 0 before its first order; "unknown" only when it happened.
        modes = set(engine.sessions) if engine is not None else set()
        modes |= {mode for _tally, mode in counts}
        for tally in TALLIES:
            family = CounterMetricFamily(f"execgw_{tally}_total", TALLY_HELP[tally], labels=["mode"])
            for mode in sorted(modes):
                family.add_metric([mode], counts.get((tally, mode), 0))
            yield family
        yield histogram_family(
            "execgw_ib_report_commit_seconds", "IB callback received to its change committed and published "
            "(order statuses, an execution's by its status change, commissions)",
            {(): metrics.activity.report_commit})
        yield histogram_family(
            "execgw_watch_delivery_seconds", "Event stored to handed to a WatchRun stream; replayed: read back "
            "from the database for a watcher catching up", dict(metrics.deliveries), labels=["delivery"])
        yield histogram_family(
            "execgw_writer_batch_reports", "IB reports applied in one writer transaction",
            {(): metrics.writer_batches})
        yield histogram_family(
            "execgw_writer_transaction_seconds", "A committed writer transaction's legs: applying its work, "
            "its statements, its COMMIT", dict(metrics.writer_legs), labels=["leg"])

    def _intake(self) -> Iterator[Metric]:
        metrics = self._metrics
        engine = metrics.engine
        yield CounterMetricFamily(
            "execgw_database_outages_total", "Times the database stopped taking the writer's transactions",
            value=metrics.outages.outages)
        if engine is None:
            return
        reports = engine.reports
        yield GaugeMetricFamily("execgw_database_ok", "1 while the database takes the writer's transactions",
                                value=1.0 if reports.database_ok else 0.0)
        yield GaugeMetricFamily(
            "execgw_reports_held", "IB reports waiting in the engine's inbox to be written (the writer's backlog; "
            "during a database outage, the reports held)", value=reports.held)
        yield GaugeMetricFamily(
            "execgw_reports_dropped", "IB reports dropped past the hold bound in this outage, awaiting recovery by "
            "reconciliation (0 again once it starts)", value=reports.events_dropped)
        yield CounterMetricFamily("execgw_reports_poison_total",
                                  "IB reports that could not be applied (a bug), logged and skipped",
                                  value=reports.poison_reports)
        yield GaugeMetricFamily("execgw_accepting_runs", "1 while new runs are taken (database ok, no report "
                                "dropped or being recovered)", value=1.0 if engine.accepting_runs else 0.0)

    def _reconciliations(self) -> Iterator[Metric]:
        engine = self._metrics.engine
        if engine is None:
            return
        reconciler = engine.reconciler
        asked, failed, settled = dict(reconciler.asked), dict(reconciler.failed), dict(reconciler.orders_settled)
        runs = CounterMetricFamily("execgw_reconciliations_total", "Reconciliations that asked IB: full (on "
                                   "every connect, after 1101/1102) or at a run's end", labels=["mode", "scope"])
        failures = CounterMetricFamily("execgw_reconciliations_failed_total", "Reconciliations IB refused or went "
                                       "quiet on without answering, or the database could not take", labels=["mode", "scope"])
        for key in sorted(set(asked) | set(failed)):
            runs.add_metric(list(key), asked.get(key, 0))
            failures.add_metric(list(key), failed.get(key, 0))
        orders = CounterMetricFamily("execgw_reconciliation_orders_settled_total", "Unfinished orders a full "
                                     "reconciliation settled because IB knew nothing of them", labels=["mode"])
        for mode in sorted(set(engine.sessions) | set(settled)):
            orders.add_metric([mode], settled.get(mode, 0))
        yield from (runs, failures, orders)

    def _watchers(self) -> Iterator[Metric]:
        open_streams = self._metrics.open_watch_streams
        if open_streams is not None:
            yield GaugeMetricFamily("execgw_watch_streams", "Open WatchRun streams", value=open_streams())
