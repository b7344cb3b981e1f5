"""Section 2, event latency: the simulator makes an execution (its record's time) → the gateway
stores the fill (the event's stored_at, stamped in the writer's transaction just before its
commit) → each watcher receives it (time.time() on receipt). One machine, one clock.

At each (rate, watchers): orders resting at IB, the watchers opened, then released to fill in
one-share executions at `rate` a second together (about 100/s per order, spaced by the scenario's
fill_interval: benchmarks/watched_run.py says why; the rate the simulator really achieved is in
the details and the note). Floors: one bare commit of an execution's rows, and the bare gRPC
server streaming the same messages at the same rate to the same watchers.

The watchers take one event a message, the most demanding way to watch (gRPC's per-message
work, about 0.1 ms of the gateway's CPU each, is paid per event per watcher); `latency_batched`
repeats a case with watchers that take up to WATCH_EVENTS_PER_MESSAGE a message, as the Python
client does. Its floor is still the bare server's one message an event.
"""

from __future__ import annotations

from benchmarks import floors
from benchmarks.figures import Figure, guarded, percentiles
from benchmarks.plan import Context
from benchmarks.rig import Database, gateway, stub_for
from benchmarks.simproc import SimProcess
from benchmarks.watched_run import paced, resting_behaviour, watch_release
from execgw.client.client import WATCH_EVENTS_PER_MESSAGE
from execgw.v1 import execution_pb2_grpc as pb_grpc

SECTION = "latency"
PCT = ("p50", "p95", "p99")
Case = tuple[int, float, int, int]  # executions/s, seconds, watchers, events a message (0: one)


def _label(rate: int, watchers: int, per_message: int = 0) -> str:
    batched = f", ≤{per_message} events a message" if per_message > 1 else ""
    return f"{rate}/s, {watchers} watcher{'s' if watchers > 1 else ''}{batched}"


def _pacing(rate: int, seconds: float) -> tuple[int, int, float]:
    return paced(rate, max(2, int(rate * seconds)))


def _measure(ctx: Context, stub: pb_grpc.ExecutionServiceStub, target: str, sim: SimProcess, case: Case,
             figures: tuple[Figure, Figure, Figure]) -> None:
    rate, seconds, watchers, per_message = case
    orders, per_order, _ = _pacing(rate, seconds)
    executions = orders * per_order
    watched = watch_release(stub, target, sim, f"lat{rate}-{watchers}w-{ctx.tag()}", f"L{rate}W{watchers}",
                            per_order, watchers, orders=orders, keep_fills=True, events_per_message=per_message)
    short = [r for r in watched.results if len(r.fills) != executions]
    if watched.incomplete or short:
        raise RuntimeError(f"{len(watched.incomplete)} streams incomplete, {len(short)} without every fill")
    sent = watched.sent
    stored = {exec_id: at for exec_id, at, _ in watched.results[0].fills}
    made = sorted(sent.values())
    offered = round((len(made) - 1) / (made[-1] - made[0]), 1) if made[-1] > made[0] else None
    details = {"executions": executions, "orders": orders, "watchers": watchers, "offered_per_second": offered}
    to_stored, to_received, end_to_end = figures
    to_stored.add(percentiles([(at - sent[e]) * 1000 for e, at in stored.items()]), details)
    to_received.add(percentiles([(got - at) * 1000 for r in watched.results for _, at, got in r.fills]), details)
    end_to_end.add(percentiles([(got - sent[e]) * 1000 for r in watched.results for e, _, got in r.fills]), details)


def run(ctx: Context, database: Database) -> None:
    sizes, db, report = ctx.sizes, database.label, ctx.report
    plan: dict[Case, tuple[Figure, Figure, Figure]] = {}
    cases = [(rate, seconds, watchers, 0) for rate, seconds in sizes.latency for watchers in sizes.latency_watchers]
    cases += [(rate, seconds, watchers, WATCH_EVENTS_PER_MESSAGE) for rate, seconds, watchers in sizes.latency_batched]
    for rate, seconds, watchers, per_message in cases:
        label = _label(rate, watchers, per_message)
        orders, per_order, _ = _pacing(rate, seconds)
        note = f"{orders * per_order:,} executions ({orders} order{'s' if orders > 1 else ''})"
        plan[(rate, seconds, watchers, per_message)] = (
            report.figure(SECTION, f"{label}: execution → stored", "ms", database=db, parts=PCT,
                          floor=floors.key(floors.DB_COMMIT_MS, db), note=note),
            report.figure(SECTION, f"{label}: stored → received", "ms", database=db, parts=PCT,
                          floor=floors.key(floors.grpc_latency(rate, watchers)), note=note),
            report.figure(SECTION, f"{label}: execution → received", "ms", database=db, parts=PCT,
                          note="the whole way; its two legs' floors are above"),
        )
    scenario = {"orders": {f"lat{rate}-*": resting_behaviour(*_pacing(rate, seconds)[1:])
                           for rate, seconds, _, _ in cases}}
    for repeat in range(ctx.repeat):
        ctx.say(f"[{db}] latency, repeat {repeat + 1}/{ctx.repeat}")
        everything = [f for figures in plan.values() for f in figures]
        guarded(everything, lambda: _repeat(ctx, database, scenario, plan))
    for figures in plan.values():
        # The rate is nominal: what the simulator really offered goes beside the figure.
        offered = [d["offered_per_second"] for d in figures[0].details if d.get("offered_per_second")]
        if offered:
            for figure in figures:
                figure.note += f"; offered {min(offered):,.0f}–{max(offered):,.0f}/s"


def _repeat(ctx: Context, database: Database, scenario: dict[str, object],
            plan: dict[Case, tuple[Figure, Figure, Figure]]) -> None:
    with (database.fresh(ctx.folder) as url, SimProcess(scenario) as sim,
          gateway(url, sim.port, ctx.folder) as gw, stub_for(gw.target) as stub):
        for case, figures in plan.items():
            ctx.say(f"[{database.label}] latency {_label(case[0], case[2], case[3])}")
            guarded(list(figures), lambda c=case, f=figures: _measure(ctx, stub, gw.target, sim, c, f))
