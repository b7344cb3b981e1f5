"""Section 6, reconnect replay, measured by benchmarks/replay.py (another engineer's script,
reused here as it stands): IB holds the day's executions of an order that filled while no gateway
was connected; a gateway starts on the same database, connects, reconciles (open orders,
completed orders, the day's executions with their commissions) and stores them. Timed from the
moment its IB endpoint is connected until the database holds every fill with its commission
(from its start, and to the first fill stored, in the details). Floor, in the same run: ibapi's
decoder alone (an EClient with the gateway's reader) asking IB for the same day's executions.

This module only adapts that script to the table: fresh databases as every section gets them,
repeats, and "not measured" with the reason if its `replay(url, executions)` is not there (it is
being written at the same time as this).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from benchmarks import floors
from benchmarks.figures import Figure, guarded
from benchmarks.plan import Context
from benchmarks.rig import Database

SECTION = "replay"


def _replay_function() -> Callable[[str, int], Any] | str:
    """benchmarks/replay.py's replay(url, executions), or why it cannot be used."""
    try:
        from benchmarks import replay
    except Exception as exc:  # its import failing is a reason to report, not to stop the others
        return f"benchmarks/replay.py cannot be imported: {type(exc).__name__}: {exc}"
    function = getattr(replay, "replay", None)
    if not callable(function):
        return "benchmarks/replay.py has no replay(url, executions) any more"
    return function  # type: ignore[no-any-return]


def _fields(outcome: Any) -> dict[str, float]:
    """replay()'s answer: its Replay(decoder_alone, gateway, connected, first_stored) named
    tuple, or the (decoder_alone, gateway) pair it returned at first."""
    if hasattr(outcome, "_asdict"):
        return {name: float(value) for name, value in outcome._asdict().items()}
    decoder_alone, gateway = outcome
    return {"decoder_alone": float(decoder_alone), "gateway": float(gateway)}


def _measure(ctx: Context, database: Database, function: Callable[[str, int], Any],
             executions: int, figure: Figure, floor: Figure) -> None:
    with database.fresh(ctx.folder) as url:
        fields = _fields(function(url, executions))
    floor.add(fields["decoder_alone"])
    if "connected" not in fields:
        raise RuntimeError("benchmarks/replay.py reports no connect time, only start → stored: "
                           f"{fields['gateway']:.2f} s")
    seconds = fields["gateway"] - fields["connected"]
    figure.add(seconds, {**{name: round(value, 3) for name, value in fields.items()},
                         "executions_per_second": round(executions / seconds, 1),
                         "ratio_to_floor": round(seconds / fields["decoder_alone"], 2)})


def run(ctx: Context, database: Database) -> None:
    db, report = database.label, ctx.report
    plan: dict[int, tuple[Figure, Figure]] = {}
    for executions in ctx.sizes.replay:
        floor = report.figure(floors.SECTION, f"ibapi decoder alone: reqExecutions replaying {executions:,}", "s",
                              database=db, note="benchmarks/replay.py's floor, measured in section 6")
        figure = report.figure(SECTION, f"{executions:,} executions held by IB: connected → all stored", "s",
                               database=db, floor=floor.key,
                               note="benchmarks/replay.py: reconcile, every fill with its commission")
        plan[executions] = (figure, floor)
    function = _replay_function()
    if isinstance(function, str):
        for figure, floor in plan.values():
            figure.not_measured = floor.not_measured = function
        return
    for repeat in range(ctx.repeat):
        for executions, (figure, floor) in plan.items():
            ctx.say(f"[{db}] replay of {executions:,} executions (benchmarks/replay.py), "
                    f"repeat {repeat + 1}/{ctx.repeat}")
            guarded([figure, floor], lambda n=executions, f=figure, fl=floor: _measure(ctx, database, function, n, f, fl))
