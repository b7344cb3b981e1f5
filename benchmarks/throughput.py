"""Section 3, throughput: the highest execution rate the gateway sustains, every execution stored
with its commission and status change and delivered to one watcher, without a queue that keeps
growing.

The watcher asks for up to WATCH_EVENTS_PER_MESSAGE events a message, as the Python client does
(client/client.py): what is ready at once shares a message. One event a message costs the gateway
about 0.1 ms of CPU each (gRPC's per-message work), two a fill, which held it near 1,100/s here.

The offered rate steps up (one run per step, its orders released to fill one share each at
`rate` a second together for `throughput_seconds`; benchmarks/watched_run.py says how a rate is
offered) until a step is not sustained. A step is sustained when
the watcher got every fill, every commission and the final status, in sequence, and its lag
(receipt − the simulator's execution time) grew by no more than 0.1 s + 2% of the step's length
from the first fifth of the executions to the last: a gateway slower than the offered rate
falls behind linearly (by 1 − its rate / the offered rate of every second) and fails this once
it is 2% short; a gateway that keeps up holds its lag flat, give or take a tenth of a second of
noise on a shared machine. The figure is
the rate the simulator really achieved on the highest sustained step; floor: the bare database
transaction, batched.
"""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks import floors
from benchmarks.figures import Figure, guarded
from benchmarks.plan import Context
from benchmarks.rig import Database, cpu_seconds, gateway, gateway_pid, stub_for
from benchmarks.simproc import SimProcess
from benchmarks.watched_run import WatchedRun, paced, resting_behaviour, watch_release
from execgw.client.client import WATCH_EVENTS_PER_MESSAGE

SECTION = "throughput"
NAME = "highest sustained rate, stored and delivered to 1 watcher"
NOTE = f"the watcher takes up to {WATCH_EVENTS_PER_MESSAGE} events a message, as the Python client does"


def _pacing(ctx: Context, rate: int) -> tuple[int, int, float]:
    return paced(rate, max(10, int(rate * ctx.sizes.throughput_seconds)))


def step_verdict(watched: WatchedRun, executions: int, nominal: int, cpu: float | None = None) -> dict[str, Any]:
    """What one step shows: the achieved rate, the lag at its start and end, sustained or not;
    with `cpu` (the gateway's CPU seconds over the step), its CPU per execution."""
    result = watched.results[0]
    lags = sorted(((watched.sent[e], got - watched.sent[e]) for e, _, got in result.fills if e in watched.sent))
    made = [at for at, _ in lags]
    span = made[-1] - made[0] if len(made) > 1 else 0.0
    fifth = max(1, len(lags) // 5)
    first = statistics.median(lag for _, lag in lags[:fifth])
    last = statistics.median(lag for _, lag in lags[-fifth:])
    delivered = (not watched.incomplete and len(result.fills) == executions == len(watched.sent)
                 and result.commissions == executions)
    growth = last - first
    return {
        "nominal_per_second": nominal,
        "offered_per_second": round((len(made) - 1) / span, 1) if span else None,
        "executions": executions,
        "all_delivered": delivered,
        "lag_start_s": round(first, 4),
        "lag_end_s": round(last, 4),
        "lag_growth_s": round(growth, 4),
        "sustained": delivered and growth <= 0.1 + 0.02 * span,
        "gateway_cpu_us_per_execution": round(1e6 * cpu / executions, 1) if cpu is not None and executions else None,
    }


def _repeat(ctx: Context, database: Database, scenario: dict[str, Any], figure: Figure) -> None:
    steps: list[dict[str, Any]] = []
    with (database.fresh(ctx.folder) as url, SimProcess(scenario) as sim,
          gateway(url, sim.port, ctx.folder) as gw, stub_for(gw.target) as stub):
        for rate in ctx.sizes.throughput_rates:
            orders, per_order, _ = _pacing(ctx, rate)
            ctx.say(f"[{database.label}] throughput: offering {rate}/s")
            cpu_before = cpu_seconds(gateway_pid(gw))
            watched = watch_release(stub, gw.target, sim, f"thr{rate}-{ctx.tag()}", f"T{rate}", per_order, 1,
                                    orders=orders, keep_fills=True, events_per_message=WATCH_EVENTS_PER_MESSAGE)
            cpu = cpu_seconds(gateway_pid(gw)) - cpu_before
            steps.append(step_verdict(watched, orders * per_order, rate, cpu))
            ctx.say(f"[{database.label}] throughput: {steps[-1]}")
            if not steps[-1]["sustained"]:
                break
    sustained = [s for s in steps if s["sustained"]]
    if not sustained:
        figure.fail(f"not even the lowest step was sustained: {steps[0]}")
        return
    ceiling_reached = not steps[-1]["sustained"]
    figure.add(sustained[-1]["offered_per_second"], {"steps": steps, "ceiling_reached": ceiling_reached})


def run(ctx: Context, database: Database) -> None:
    db = database.label
    rates = ctx.sizes.throughput_rates
    figure = ctx.report.figure(
        SECTION, NAME, "executions/s", database=db, floor=floors.key(floors.DB_BATCHED, db),
        note=f"offered {rates[0]}…{rates[-1]}/s nominal, {ctx.sizes.throughput_seconds:g} s a step; {NOTE}")
    scenario = {"orders": {f"thr{rate}-*": resting_behaviour(*_pacing(ctx, rate)[1:]) for rate in rates}}
    for repeat in range(ctx.repeat):
        ctx.say(f"[{db}] throughput, repeat {repeat + 1}/{ctx.repeat}")
        guarded([figure], lambda: _repeat(ctx, database, scenario, figure))
    if figure.details and not all(d["ceiling_reached"] for d in figure.details):
        figure.note += f"; the highest step ({rates[-1]}/s) was sustained in some repeat: a lower bound there"
