"""Section 1, the floors every other figure is read against, measured in the same invocation:
the bare database transaction (per database), the bare gRPC server at the same rates and watcher
counts as sections 2 and 5, ibapi's decoder alone, and the pacing arithmetic of section 4. (The
simulator → bare socket reader floor needs the peer's simulator: section 8 measures it.)
"""

from __future__ import annotations

import time

from benchmarks import db_floor, decoder_floor
from benchmarks.bare_grpc import BareServer
from benchmarks.figures import Figure, figure_key, guarded, percentiles
from benchmarks.plan import Context
from benchmarks.rig import Database
from benchmarks.run_events import watch_messages
from benchmarks.watch_clients import Watchers

SECTION = "floors"
PACING_PER_SECOND = 45  # the gateway's default pacing_per_second
DB_PER_COMMIT = "bare DB: one commit per execution"
DB_COMMIT_MS = "bare DB: one execution's commit"
DB_BATCHED = "bare DB: 500 executions per commit"
DECODER = "ibapi decoder alone (execDetails+orderStatus+commission)"
SOCKET = "simulator → bare socket reader"
PCT = ("p50", "p95", "p99")


def grpc_latency(rate: int, watchers: int) -> str:
    return f"bare grpc.aio: send → received, {rate}/s, {watchers} watcher{'s' if watchers > 1 else ''}"


def grpc_fanout(watchers: int) -> str:
    return f"bare grpc.aio: {watchers:,} watchers, deliveries"


def grpc_fanout_rss(watchers: int) -> str:
    return f"bare grpc.aio server RSS, {watchers:,} watchers open"


def pacing(orders: int) -> str:
    return f"pacing: {orders:,} orders at {PACING_PER_SECOND}/s (computed)"


def key(name: str, database: str | None = None) -> str:
    return figure_key(SECTION, name, database)


# -- the database floors ---------------------------------------------------------------------------


def run_database(ctx: Context, database: Database) -> None:
    sizes, db = ctx.sizes, database.label
    per_commit = ctx.report.figure(SECTION, DB_PER_COMMIT, "executions/s", database=db,
                                   note=f"{sizes.db_per_commit:,} executions")
    commit_ms = ctx.report.figure(SECTION, DB_COMMIT_MS, "ms", database=db, parts=PCT,
                                  note="one execution's rows, commit included")
    batched = ctx.report.figure(SECTION, DB_BATCHED, "executions/s", database=db,
                                note=f"{sizes.db_batched:,} executions, multi-row statements")
    for repeat in range(ctx.repeat):
        ctx.say(f"[{db}] floors: bare database transactions, repeat {repeat + 1}/{ctx.repeat}")
        try:
            with database.fresh(ctx.folder) as url:
                floor = db_floor.measure(url, sizes.db_per_commit, sizes.db_batched)
        except Exception as exc:
            for figure in (per_commit, commit_ms, batched):
                figure.fail(f"{type(exc).__name__}: {exc}")
            continue
        per_commit.add(floor.per_commit_rate)
        commit_ms.add(floor.per_commit_ms)
        batched.add(floor.batched_rate)


# -- the floors without a database -----------------------------------------------------------------


def _grpc_latency(ctx: Context, rate: int, seconds: float, watchers: int, figure: Figure) -> None:
    executions = max(2, int(rate * seconds))
    messages = watch_messages("00000000-0000-4000-8000-000000000000", executions)
    with BareServer(messages[0]) as bare:
        clients = Watchers(bare.target, "00000000-0000-4000-8000-000000000000", watchers, keep_fills=True).start()
        # Two messages per tick: an execution is a fill and its commission, at `rate` per second.
        bare.broadcast(messages, per_tick=2, rate=rate)
        results = clients.results()
    if not all(r.complete for r in results):
        figure.fail(f"{sum(not r.complete for r in results)} streams incomplete")
        return
    latencies = [(received - stored) * 1000 for r in results for _, stored, received in r.fills]
    figure.add(percentiles(latencies), {"executions": executions, "watchers": watchers})


def _grpc_fanout(ctx: Context, deliveries: Figure, rss: Figure) -> None:
    sizes = ctx.sizes
    messages = watch_messages("00000000-0000-4000-8000-000000000000", sizes.fanout_executions)
    with BareServer(messages[0], max_streams=sizes.fanout_watchers + 100) as bare:
        clients = Watchers(bare.target, "00000000-0000-4000-8000-000000000000", sizes.fanout_watchers,
                           processes=sizes.fanout_processes).start(ready_timeout=300)
        server_rss = bare.rss_mb()  # every stream open, as the gateway's is measured
        started = time.time()
        bare.broadcast(messages)
        results = clients.results()
    incomplete = sum(not r.complete for r in results)
    if incomplete:
        deliveries.fail(f"{incomplete} of {len(results)} streams incomplete")
        return
    finished = max(r.final_at or 0.0 for r in results)
    sent = len(results) * (len(messages) - 1)
    deliveries.add(sent / (finished - started), {"deliveries": sent, "seconds": finished - started})
    rss.add(server_rss)


def run_shared(ctx: Context) -> None:
    sizes, report = ctx.sizes, ctx.report
    decoder = report.figure(SECTION, DECODER, "executions/s", note=f"{sizes.decoder:,} executions, no socket")
    latency = {
        (rate, watchers): report.figure(SECTION, grpc_latency(rate, watchers), "ms", parts=PCT,
                                        note=f"{int(rate * seconds):,} executions (fill + commission)")
        for rate, seconds in sizes.latency for watchers in sizes.latency_watchers
    }
    fanout = report.figure(SECTION, grpc_fanout(sizes.fanout_watchers), "deliveries/s",
                           note=f"{sizes.fanout_executions} executions' events to each, "
                                f"{sizes.fanout_processes} client processes")
    fanout_rss = report.figure(SECTION, grpc_fanout_rss(sizes.fanout_watchers), "MiB")
    paced = report.figure(SECTION, pacing(sizes.submission_orders), "s",
                          note=f"{sizes.submission_orders:,} / {PACING_PER_SECOND} per second: arithmetic, not measured")
    for repeat in range(ctx.repeat):
        ctx.say(f"floors: decoder, bare gRPC, repeat {repeat + 1}/{ctx.repeat}")
        decoder.add(decoder_floor.measure(sizes.decoder))
        for rate, seconds in sizes.latency:
            for watchers in sizes.latency_watchers:
                figure = latency[(rate, watchers)]
                guarded([figure], lambda r=rate, s=seconds, w=watchers, f=figure: _grpc_latency(ctx, r, s, w, f))
        guarded([fanout, fanout_rss], lambda: _grpc_fanout(ctx, fanout, fanout_rss))
        paced.add(sizes.submission_orders / PACING_PER_SECOND)
