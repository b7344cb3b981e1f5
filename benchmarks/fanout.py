"""Section 5, fan-out: `fanout_watchers` WatchRun streams on one run, from `fanout_processes`
client processes. The run's order rests until every stream is open, then fills in
`fanout_executions` back-to-back executions; every watcher must receive every event (sequences
1..last without gap or repeat, ending with the final status).

Deliveries per second: watchers × events after the release, over the time from the release to
the last watcher's final status. The gateway's RSS (its own process) before the watchers, with
all open, and after the flood. Floors: the bare grpc.aio server with the same watchers and
messages (section 1), deliveries and RSS.
"""

from __future__ import annotations

from benchmarks import floors
from benchmarks.figures import Figure, guarded
from benchmarks.plan import Context
from benchmarks.rig import Database, gateway, gateway_pid, rss_mb, stub_for
from benchmarks.simproc import SimProcess
from benchmarks.watched_run import resting_behaviour, watch_release

SECTION = "fanout"


def _repeat(ctx: Context, database: Database, figures: dict[str, Figure]) -> None:
    sizes = ctx.sizes
    watchers, executions = sizes.fanout_watchers, sizes.fanout_executions
    scenario = {"orders": {"fan-*": resting_behaviour(executions)}}
    room = {"max_watch_streams": watchers + 100, "max_watch_streams_per_caller": watchers + 100}
    rss: dict[str, float] = {}
    with (database.fresh(ctx.folder) as url, SimProcess(scenario) as sim,
          gateway(url, sim.port, ctx.folder, **room) as gw, stub_for(gw.target) as stub):
        pid = gateway_pid(gw)
        watched = watch_release(stub, gw.target, sim, f"fan-{ctx.tag()}", "FAN", executions, watchers,
                                processes=sizes.fanout_processes,
                                before_watchers=lambda: rss.setdefault("before", rss_mb(pid)),
                                watchers_open=lambda: rss.setdefault("open", rss_mb(pid)))
        rss["after"] = rss_mb(pid)
    missing = watched.incomplete
    errors = sorted({r.error for r in missing if r.error})
    figures["missing"].add(len(missing), {"watchers": len(watched.results), "errors": errors})
    figures["rss_before"].add(rss["before"])
    figures["rss_open"].add(rss["open"])
    figures["rss_after"].add(rss["after"])
    if missing:
        figures["deliveries"].fail(f"{len(missing)} of {len(watched.results)} watchers missed events")
        return
    finished = max(r.final_at or 0.0 for r in watched.results)
    events = watched.last_sequence - watched.sequence_at_release
    delivered = len(watched.results) * events
    figures["deliveries"].add(delivered / (finished - watched.released_at),
                              {"deliveries": delivered, "seconds": round(finished - watched.released_at, 3),
                               "events_per_watcher": events})


def run(ctx: Context, database: Database) -> None:
    db, sizes = database.label, ctx.sizes
    watchers = sizes.fanout_watchers
    report = ctx.report
    figures = {
        "deliveries": report.figure(SECTION, f"{watchers:,} watchers: deliveries", "deliveries/s", database=db,
                                    floor=floors.key(floors.grpc_fanout(watchers)),
                                    note=f"{sizes.fanout_executions} executions' events to each, "
                                         f"{sizes.fanout_processes} client processes"),
        "missing": report.figure(SECTION, "watchers that missed an event", "watchers", database=db, note="must be 0"),
        "rss_before": report.figure(SECTION, "gateway RSS before the watchers", "MiB", database=db),
        "rss_open": report.figure(SECTION, f"gateway RSS, {watchers:,} watchers open", "MiB", database=db,
                                  floor=floors.key(floors.grpc_fanout_rss(watchers))),
        "rss_after": report.figure(SECTION, f"gateway RSS after the flood to {watchers:,} watchers", "MiB",
                                   database=db),
    }
    for repeat in range(ctx.repeat):
        ctx.say(f"[{db}] fan-out to {watchers:,} watchers, repeat {repeat + 1}/{ctx.repeat}")
        guarded(list(figures.values()), lambda: _repeat(ctx, database, figures))
