"""Section 6, reconnect replay, measured by benchmarks/replay.py (another engineer's script,
reused here as it stands): IB holds the day's executions of an order that filled while no gateway
was connected; a gateway starts on the same database, connects, reconciles (open orders,
completed orders, the day's executions with their commissions) and stores them. Timed from the
moment its IB endpoint is connected until the database holds every fill with its commission
(from its start, and to the first fill stored, in the details). Floor, in the same run: ibapi's
decoder alone (an EClient with the gateway's reader) asking IB for the same day's executions.
Beside each replay, the CPU its gateway's threads used (all, the writer, ibapi's decoding), with
the replay's time from the gateway's start as its floor: a sum close to that time means the
threads worked one after another (the GIL), not side by side. And the database's own share: the
lean batched floor (db_floor.py: the gateway's own multi-row INSERTs, 500 executions a
transaction, one connection) writing the same number of executions' rows into a fresh database,
against the decoder: where it alone takes more than 2× the decoder, a gateway writing these rows
on one connection, waiting for each statement, cannot replay within 2× of it on that database.
Then the machine's share: the CPU every process spent on the replay (the gateway, the simulator
sending, a MySQL server on this machine storing) divided by the machine's cores, against the
decoder: the least time the replay could take here however well its parts overlapped. Last, the
floors' share: the same for the floors alone (the decoder's CPU, the simulator's beside it, the
lean floor's client and server), and what 2× the decoder then leaves for the rest of the
gateway's work, per execution, against what it used (replay.py's `bound`).

This module only adapts that script to the table: fresh databases as every section gets them,
repeats, and "not measured" with the reason if its `replay(url, executions)` is not there (it is
being written at the same time as this).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from benchmarks import db_floor, floors
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
        return {name: float(value) for name, value in outcome._asdict().items() if value is not None}
    decoder_alone, gateway = outcome
    return {"decoder_alone": float(decoder_alone), "gateway": float(gateway)}


CPU_PARTS = ("all", "writer", "ibapi decoding")
MACHINE_PARTS = ("least wall", "gateway CPU", "simulator CPU", "database server CPU")
FLOOR_PARTS = ("least wall", "decoder CPU", "simulator CPU", "rows' client CPU", "database server CPU")


def _measure(ctx: Context, database: Database, function: Callable[[str, int], Any],
             executions: int, figure: Figure, floor: Figure, cpu: Figure, wall: Figure, bare: Figure,
             machine: Figure, floors_cpu: Figure) -> None:
    # Imported here as in _replay_function: should it fail, this repeat fails saying why.
    from benchmarks.replay import bare_write, bound

    with database.fresh(ctx.folder) as url:
        outcome = function(url, executions)
    fields = _fields(outcome)
    floor.add(fields["decoder_alone"])
    with database.fresh(ctx.folder) as url:
        rows = bare_write(url, executions)
    bare.add(rows.seconds, {"ratio_to_decoder": round(rows.seconds / fields["decoder_alone"], 2),
                            "client_cpu": round(rows.client_cpu, 3), "server_cpu": rows.server_cpu})
    cores = os.cpu_count() or 1
    if "decoder_cpu" in fields:
        limit = bound(executions, cores, outcome, rows)
        floors_cpu.add({"least wall": limit.least, "decoder CPU": fields["decoder_cpu"],
                        "simulator CPU": fields["floor_simulator_cpu"], "rows' client CPU": rows.client_cpu,
                        "database server CPU": rows.server_cpu or 0.0},
                       {"cores": cores, "ratio_to_decoder": round(limit.least / fields["decoder_alone"], 2),
                        "room_us_per_execution": round(limit.room_us, 1),
                        "room_us_per_execution_one_process": round(limit.room_one_process_us, 1),
                        "rest_us_per_execution_used": round(limit.rest_us, 1)})
    else:
        floors_cpu.fail("benchmarks/replay.py reports no CPU of ibapi's decoder alone")
    if "gateway_cpu" in fields:
        wall.add(fields["gateway"])
        cpu.add({"all": fields["gateway_cpu"], "writer": fields["writer_cpu"],
                 "ibapi decoding": fields["decoding_cpu"]})
    else:
        reason = "benchmarks/replay.py reports no CPU of the gateway's threads"
        cpu.fail(reason)
        wall.fail(reason)
    if "simulator_cpu" in fields:
        # SQLite's work, or a remote server's we cannot see, is in the gateway's CPU or left out.
        parts = {"gateway CPU": fields["gateway_cpu"], "simulator CPU": fields["simulator_cpu"],
                 "database server CPU": fields.get("database_cpu", 0.0)}
        least = sum(parts.values()) / cores
        machine.add({"least wall": least, **parts},
                    {"cores": cores, "ratio_to_decoder": round(least / fields["decoder_alone"], 2),
                     "database_server_seen": "database_cpu" in fields})
    else:
        machine.fail("benchmarks/replay.py reports no CPU of the simulator")
    if "connected" not in fields:
        raise RuntimeError("benchmarks/replay.py reports no connect time, only start → stored: "
                           f"{fields['gateway']:.2f} s")
    seconds = fields["gateway"] - fields["connected"]
    figure.add(seconds, {**{name: round(value, 3) for name, value in fields.items()},
                         "executions_per_second": round(executions / seconds, 1),
                         "ratio_to_floor": round(seconds / fields["decoder_alone"], 2)})


def run(ctx: Context, database: Database) -> None:
    db, report = database.label, ctx.report
    plan: dict[int, tuple[Figure, Figure, Figure, Figure, Figure, Figure, Figure]] = {}
    for executions in ctx.sizes.replay:
        floor = report.figure(floors.SECTION, f"ibapi decoder alone: reqExecutions replaying {executions:,}", "s",
                              database=db, note="benchmarks/replay.py's floor, measured in section 6")
        figure = report.figure(SECTION, f"{executions:,} executions held by IB: connected → all stored", "s",
                               database=db, floor=floor.key,
                               note="benchmarks/replay.py: reconcile, every fill with its commission")
        wall = report.figure(SECTION, f"{executions:,} executions: gateway start → all stored", "s", database=db)
        cpu = report.figure(SECTION, f"{executions:,} executions: CPU of the gateway's threads meanwhile", "CPU s",
                            database=db, parts=CPU_PARTS, floor=wall.key,
                            note="a sum near its floor: the threads took turns (the GIL)")
        bare = report.figure(SECTION, f"{executions:,} executions: bare DB alone writing their rows", "s",
                             database=db, floor=floor.key,
                             note=f"the database's share: the gateway's INSERTs, {db_floor.BATCH} executions a "
                                  "transaction, one connection, fresh database")
        machine = report.figure(SECTION, f"{executions:,} executions: every process's CPU over the cores", "s",
                                database=db, parts=MACHINE_PARTS, floor=floor.key,
                                note="the least wall time this machine allows, however well the parts overlap")
        floors_cpu = report.figure(SECTION, f"{executions:,} executions: the floors' CPU over the cores", "s",
                                   database=db, parts=FLOOR_PARTS, floor=floor.key,
                                   note="the least any gateway of these parts could take here; the details say "
                                        "what 2x leaves for the rest of its work, per execution")
        plan[executions] = (figure, floor, cpu, wall, bare, machine, floors_cpu)
    function = _replay_function()
    if isinstance(function, str):
        for figures in plan.values():
            for each in figures:
                each.not_measured = function
        return
    for repeat in range(ctx.repeat):
        for executions, figures in plan.items():
            ctx.say(f"[{db}] replay of {executions:,} executions (benchmarks/replay.py), "
                    f"repeat {repeat + 1}/{ctx.repeat}")
            guarded(list(figures), lambda n=executions, f=figures: _measure(ctx, database, function, n, *f))
