"""Section 7, soak memory: the gateway's RSS when it has just connected and after it stored and
streamed `soak_executions` executions, in runs of `soak_run` (one order each, filled back to
back with commissions, one watcher following each run to its final status), then the database
against the simulator: every execution IB made stored once, nothing else.

Each run trades a symbol of its own, so a run's closing reconciliation (reqExecutions of its
symbols) replays that run's executions only, as on a day with many symbols. RSS after each run
is in the details (the curve); floor of the final RSS: the RSS at start.
"""

from __future__ import annotations

import time

from benchmarks import floors
from benchmarks.figures import Figure, figure_key, guarded
from benchmarks.plan import Context
from benchmarks.rig import (
    Database,
    count_fills,
    follow_to_final,
    gateway,
    gateway_pid,
    rss_mb,
    stub_for,
    submit,
)
from benchmarks.simproc import SimProcess

SECTION = "soak"
START = "gateway RSS at start (IB connected, nothing done)"


def _repeat(ctx: Context, database: Database, figures: dict[str, Figure]) -> None:
    sizes = ctx.sizes
    size = min(sizes.soak_run, sizes.soak_executions)
    runs = max(1, sizes.soak_executions // size)
    prefix = f"soak{ctx.tag()}-"
    scenario = {"orders": {"soak*": {"fills": size, "price": 100.0}}}
    curve: list[tuple[int, float]] = []
    with (database.fresh(ctx.folder) as url, SimProcess(scenario) as sim,
          gateway(url, sim.port, ctx.folder) as gw, stub_for(gw.target) as stub):
        pid = gateway_pid(gw)
        start = rss_mb(pid)
        started = time.monotonic()
        refs = []
        for number in range(runs):
            refs.append(f"{prefix}{number:04d}")
            run_id = submit(stub, [(refs[-1], f"SK{number}", size)])
            events = follow_to_final(stub, run_id, timeout=600 + size / 10)
            fills = sum(1 for event in events if event.HasField("fill"))
            if fills != size:
                raise RuntimeError(f"run {number}: the watcher got {fills} of {size} fills")
            curve.append(((number + 1) * size, round(rss_mb(pid), 1)))
        elapsed = time.monotonic() - started
        end = rss_mb(pid)
        made = sim.call("execution_count", prefix)
        stored = count_fills(url, refs)
    figures["start"].add(start)
    figures["end"].add(end, {"rss_after_executions": curve})
    figures["rate"].add(runs * size / elapsed, {"runs": runs, "executions": runs * size, "seconds": round(elapsed, 1)})
    figures["mismatch"].add(abs(stored - made), {"stored": stored, "made_by_ib": made})


def run(ctx: Context, database: Database) -> None:
    db, sizes, report = database.label, ctx.sizes, ctx.report
    total = sizes.soak_executions
    figures = {
        "start": report.figure(SECTION, START, "MiB", database=db),
        "end": report.figure(SECTION, f"gateway RSS after {total:,} executions", "MiB", database=db,
                             floor=figure_key(SECTION, START, db),
                             note=f"runs of {min(sizes.soak_run, total):,}, one watcher each"),
        "rate": report.figure(SECTION, "executions stored and streamed over the soak", "executions/s", database=db,
                              floor=floors.key(floors.DB_BATCHED, db), note="run ends (reconciliation) included"),
        "mismatch": report.figure(SECTION, "fills stored vs executions made by IB: difference", "fills",
                                  database=db, note="must be 0"),
    }
    for repeat in range(ctx.repeat):
        ctx.say(f"[{db}] soak of {total:,} executions, repeat {repeat + 1}/{ctx.repeat}")
        guarded(list(figures.values()), lambda: _repeat(ctx, database, figures))
