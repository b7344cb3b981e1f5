"""What one invocation measures and how big: the sizes of a full run and of --quick, and the
context every section gets."""

from __future__ import annotations

import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from benchmarks.figures import Report


@dataclass(frozen=True)
class Sizes:
    db_per_commit: int = 2_000  # executions, one commit each
    db_batched: int = 20_000  # executions, 500 per transaction
    decoder: int = 20_000  # executions through ibapi's decoder alone
    latency: tuple[tuple[int, float], ...] = ((100, 10.0), (1_000, 5.0))  # (executions/s, seconds)
    latency_watchers: tuple[int, ...] = (1, 10)
    # (executions/s, seconds, watchers) measured again with watchers that batch, as the client does
    latency_batched: tuple[tuple[int, float, int], ...] = ((1_000, 5.0, 10),)
    # Offered, stepped up until one is not sustained; finer where the gateway's ceiling has been.
    throughput_rates: tuple[int, ...] = (
        100, 200, 300, 400, 500, 600, 700, 800, 1_000, 1_200, 1_500, 1_750, 2_000, 2_250, 2_500, 3_000, 3_500, 4_000,
    )
    throughput_seconds: float = 10.0
    submission_orders: int = 1_000
    fanout_watchers: int = 1_000
    fanout_processes: int = 4
    fanout_executions: int = 100
    replay: tuple[int, ...] = (5_000, 20_000, 50_000)
    soak_executions: int = 100_000
    soak_run: int = 5_000  # executions per soak run (one order each)
    peer_executions: tuple[int, ...] = (2_000, 20_000)  # both receive paths at each size
    peer_time_cap: float = 120.0  # seconds a receive path may take for one size before it counts as not finished


QUICK = Sizes(
    db_per_commit=100, db_batched=1_000, decoder=1_000, latency=((100, 1.0), (1_000, 0.5)),
    latency_batched=((1_000, 0.5, 10),),
    throughput_rates=(100, 200), throughput_seconds=1.5, submission_orders=50, fanout_watchers=50,
    fanout_processes=2, fanout_executions=20, replay=(1_000,), soak_executions=2_000, soak_run=1_000,
    peer_executions=(200, 500), peer_time_cap=30.0,
)


@dataclass
class Context:
    report: Report
    sizes: Sizes
    repeat: int
    folder: Path

    def tag(self) -> str:
        """A fresh suffix for orderRefs: every measurement's orders are its own."""
        return uuid.uuid4().hex[:8]

    def say(self, message: str) -> None:
        """Progress on stderr; the table and the JSON are the results."""
        print(f"{time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)
