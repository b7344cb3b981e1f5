"""A histogram counted on the event loop without a lock, read by the scrape thread.

prometheus_client's Histogram takes a lock on every observation (about 1.6 µs here); a WatchRun
stream observes once per event it sends, thousands of streams at once. These are plain list cells
bumped on the loop; the scrape copies the list in one step (one C call under the GIL), so it
never sees a bucket half-written. The sum may lag the counts by the observation in flight.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Sequence

from prometheus_client.core import HistogramMetricFamily

SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0, 600.0, 3600.0)
"""Latency buckets: a millisecond to an hour (a watcher replaying an old run gets old events)."""

BATCH_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000)
"""IB reports per writer transaction; reports.py caps a batch at 2,000 (BATCH)."""


class LoopHistogram:
    """Loop-only `observe`; `snapshot` from any thread."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        # One cell per bucket (value <= bound), one for +Inf, and the sum last: one list, so a
        # snapshot is a single copy.
        self._cells: list[float] = [0] * (len(self.bounds) + 1) + [0.0]

    def observe(self, value: float) -> None:
        cells = self._cells
        cells[bisect_left(self.bounds, value)] += 1
        cells[-1] += value

    def snapshot(self) -> tuple[list[tuple[str, float]], float]:
        """Cumulative (le, count) buckets as Prometheus wants them, +Inf last, and the sum."""
        cells = list(self._cells)
        buckets, running = [], 0.0
        for bound, count in zip((*map(str, self.bounds), "+Inf"), cells[:-1], strict=True):
            running += count
            buckets.append((bound, running))
        return buckets, cells[-1]


def histogram_family(
    name: str, documentation: str, histograms: dict[tuple[str, ...], LoopHistogram], labels: Sequence[str] = ()
) -> HistogramMetricFamily:
    """One family from histograms keyed by their label values."""
    family = HistogramMetricFamily(name, documentation, labels=list(labels))
    for values, histogram in histograms.items():
        buckets, total = histogram.snapshot()
        family.add_metric(list(values), buckets, total)
    return family
