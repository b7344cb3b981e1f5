"""The TWS simulator in a process of its own, with its records within reach.

A real TWS is a separate (Java) process; a simulator sharing the gateway's or the client's GIL
would slow whichever it shares with. `execgw sim` runs alone but keeps its records to itself, so
this runs `SimulatorThread` in a child process and answers a few questions over a pipe: when each
execution was made (on this machine's clock, for latencies), which PLACE_ORDERs were refused and
with what code; and it releases resting orders when told.

`start_sim_cli` starts `execgw sim` itself, for the scripts that read what it logs (its
"N executions sent" lines).
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import re
import subprocess
import sys
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread

START_TIMEOUT = 30.0
EXECGW = Path(sys.executable).parent / "execgw"


def start_sim_cli(folder: Path, scenario: dict[str, Any]) -> tuple[subprocess.Popen[bytes], int, Path]:
    """`execgw sim` on a free port with `scenario`, logging to folder/sim.log: the process, its
    port and its log."""
    scenario_file = folder / "scenario.json"
    scenario_file.write_text(json.dumps(scenario))
    log = folder / "sim.log"
    with log.open("wb") as out:  # a file, not a pipe: nobody drains a pipe once the port is read
        process = subprocess.Popen([str(EXECGW), "sim", "--port", "0", "--scenario", str(scenario_file)],
                                   stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if match := re.search(r"listening on [\d.]+:(\d+)", log.read_text()):
            return process, int(match.group(1)), log
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the simulator did not start")


def _executions(sim: SimulatorThread, prefix: str) -> list[tuple[str, str, float, float]]:
    """(exec_id, order_ref, time.time() when it was made, shares) of the orders whose orderRef
    starts with prefix. The simulator stamps an execution with datetime.now(UTC) just before it
    writes its messages: the same clock as time.time() in any process of this machine."""
    return [(e.exec_id, e.order_ref, e.time.timestamp(), e.shares)
            for e in sim.executions() if e.order_ref.startswith(prefix)]


def _execution_count(sim: SimulatorThread, prefix: str) -> int:
    return sum(1 for e in sim.executions() if e.order_ref.startswith(prefix))


def _received_orders(sim: SimulatorThread, prefix: str) -> list[tuple[str, int | None]]:
    """(orderRef, refused_with) of every PLACE_ORDER received: None created, 100 dropped by pacing."""
    return [(o.order_ref, o.refused_with) for o in sim.received_orders() if o.order_ref.startswith(prefix)]


COMMANDS: dict[str, Callable[..., Any]] = {
    "executions": _executions,
    "execution_count": _execution_count,
    "received_orders": _received_orders,
    "release_order": lambda sim, ref: sim.release_order(ref),
}


def _serve(scenario: dict[str, Any], seed: int, pipe: Connection) -> None:
    # One log line per order or execution would make the simulator part of what is measured.
    logging.basicConfig(level=logging.WARNING)
    sim = SimulatorThread(scenario=Scenario.from_dict(scenario), seed=seed)
    pipe.send(sim.start())
    try:
        while True:
            command, args = pipe.recv()
            if command == "stop":
                break
            try:
                pipe.send((True, COMMANDS[command](sim, *args)))
            except Exception as exc:  # reported to the caller, who decides what it means
                pipe.send((False, f"{type(exc).__name__}: {exc}"))
    finally:
        sim.stop()
        pipe.send((True, None))


class SimProcess:
    """`with SimProcess(scenario) as sim:` a simulator on `sim.port` in a child process."""

    def __init__(self, scenario: dict[str, Any], seed: int = 0) -> None:
        self.scenario = scenario
        self.seed = seed
        self.port = 0
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> SimProcess:
        ours, theirs = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.scenario, self.seed, theirs), name="bench-simulator", daemon=True)
        self._process.start()
        if not ours.poll(START_TIMEOUT):
            self._process.kill()
            raise RuntimeError("the simulator process did not start")
        self.port = ours.recv()
        self._pipe = ours
        return self

    @property
    def pid(self) -> int:
        assert self._process is not None and self._process.pid is not None
        return self._process.pid

    def call(self, command: str, *args: Any, timeout: float = 60.0) -> Any:
        assert self._pipe is not None, "not started"
        self._pipe.send((command, args))
        if not self._pipe.poll(timeout):
            raise TimeoutError(f"the simulator did not answer {command} within {timeout:g}s")
        ok, result = self._pipe.recv()
        if not ok:
            raise RuntimeError(f"simulator {command}: {result}")
        return result

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            if self._pipe is not None and self._process.is_alive():
                self._pipe.send(("stop", ()))
                if self._pipe.poll(30):
                    self._pipe.recv()
        except (BrokenPipeError, EOFError, OSError):
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._process = None

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
