"""A reconnect that replays the day's executions: how long until the gateway has stored them all.

    .venv/bin/python -m benchmarks.replay [--executions 5000 20000 50000] [--database-url URL]
                                          [--repeat N] [--py-spy PREFIX]

For each size N, with the simulator as its own process (`execgw sim`) and a fresh database:

1. a gateway submits a run of one market order, which IB (the simulator) holds for a few
   seconds; the gateway is stopped while it waits, and the order then fills in N one-share
   executions with nobody connected;
2. floor: ibapi's decoder alone (an EClient with the gateway's reader, the gateway's client id)
   asks for the day's executions and counts them until IB's end marker: what any ibapi-based
   gateway pays before its own work starts;
3. a gateway starts again on the same database and reconciles with IB (open orders, completed
   orders, the day's executions, each with its commission); timed from its IB connection until
   the database holds all N fills, each with its commission (polled every 0.1 s), the start-up
   before it printed apart.

The figure to watch is the ratio of (3) to (2), and how it grows with N (linearly, or worse).
Beside it, the CPU the gateway's threads used during (3), the writer's and ibapi's decoding
thread's apart: their sum against the wall time says whether the threads worked in parallel or,
holding the GIL in turns, one after another. And the CPU of the other processes the replay needs:
the simulator sending (during (2) too) and, for a MySQL server on this machine, the server
storing. All of it divided by the machine's cores is the least time the replay could take here,
however well its parts overlapped.

Last, the floors' own share: the decoder's CPU, the simulator's beside it, and the replay's rows
written bare in the gateway's own INSERTs on one connection (db_floor.py's lean floor, into a
fresh database: its client's CPU and a local MySQL server's). Over the cores, the least any
gateway of these parts could take; and what 2x the decoder then leaves for all the rest of the
gateway's work, per execution, over every core and in one process (the GIL), against what the
replay's gateway used (`bound`).

On 2 shared cores one replay's ratio swings by 2x with the load (the floor most of all):
`--repeat N` runs each size N times, each beside its own floor, and prints the median ratio;
every line carries the load average before and after it.

`--py-spy PREFIX` samples this process (the gateway runs in it, on its own threads) during (3)
only, into PREFIX-N.txt (py-spy's raw format, one line per stack, its thread named first).
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import NamedTuple

import grpc
import pymysql
from ibapi.contract import Contract
from ibapi.execution import Execution, ExecutionFilter
from ibapi.wrapper import EWrapper
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from benchmarks import db_floor
from benchmarks.rig import cpu_seconds
from benchmarks.simproc import start_sim_cli
from execgw.server.config import Settings
from execgw.server.db.engine import make_engine
from execgw.server.db.models import TradeFill, TradeOrder
from execgw.server.embedded import GatewayThread
from execgw.server.engine.runs import EngineTimings
from execgw.server.ib.reader import LinearReaderClient
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

CLIENT_ID = 1  # the gateway's IB client id (its default)
HELD_SECONDS = 6.0  # how long IB holds the order before filling it: time enough to stop the gateway


def start_simulator(folder: Path, executions: int) -> tuple[subprocess.Popen[bytes], int, Path]:
    return start_sim_cli(folder, {"orders": {"replay-*": {
        "fills": executions, "fill_delay": HELD_SECONDS, "late_fill": True, "price": 100.0,
    }}})


FLOOD_BATCH = 500  # the simulator logs "N executions sent" only for more than this (sim/engine.py)


def wait_for_executions(log: Path, order_ref: str, executions: int, submitted: float) -> None:
    """Until IB has sent all `executions` (to nobody): the simulator says so above FLOOD_BATCH; at
    or below it, they all go in one pass of its loop as the order's delay ends."""
    if executions > FLOOD_BATCH:
        wait_for_log(log, rf"\({order_ref}\): {executions} executions sent", HELD_SECONDS + 300)
    else:
        time.sleep(max(submitted + HELD_SECONDS + 1.0 - time.monotonic(), 0.0))


def start_profiler(path: str) -> subprocess.Popen[bytes]:
    """py-spy sampling this process (every thread, active samples only) until it is sent SIGINT."""
    profiler = subprocess.Popen([str(Path(sys.executable).parent / "py-spy"), "record", "--pid", str(os.getpid()),
                                 "--threads", "--rate", "200", "--format", "raw", "--output", path, "--nonblocking"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)  # py-spy attaches
    return profiler


def stop_profiler(profiler: subprocess.Popen[bytes]) -> None:
    profiler.send_signal(signal.SIGINT)
    profiler.wait(60)


def wait_for_log(log: Path, pattern: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not re.search(pattern, log.read_text()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"the simulator never logged {pattern!r}")
        time.sleep(0.2)


class ExecutionCounter(EWrapper, LinearReaderClient):
    """ibapi's decoder and callbacks, framing by the gateway's reader; counts the executions of
    one execution request."""

    def __init__(self) -> None:
        EWrapper.__init__(self)
        LinearReaderClient.__init__(self, self)
        self.count = 0
        self.ready = threading.Event()
        self.done = threading.Event()

    def nextValidId(self, orderId: int) -> None:
        self.ready.set()

    def execDetails(self, reqId: int, contract: Contract, execution: Execution) -> None:
        self.count += 1

    def execDetailsEnd(self, reqId: int) -> None:
        self.done.set()

    def error(self, reqId: int, errorCode: int, errorString: str, *rest: object) -> None:
        if not 2100 <= errorCode < 2200:
            print(f"ibapi error {errorCode}: {errorString}", file=sys.stderr)


def decoder_alone(port: int, expected: int) -> float:
    """Seconds from reqExecutions to IB's end marker, with ibapi's decoder doing nothing else."""
    app = ExecutionCounter()
    app.connect("127.0.0.1", port, CLIENT_ID)
    thread = threading.Thread(target=app.run, daemon=True)
    thread.start()
    try:
        if not app.ready.wait(10):
            raise RuntimeError("ibapi client got no nextValidId")
        started = time.perf_counter()
        app.reqExecutions(1, ExecutionFilter())
        if not app.done.wait(600):
            raise RuntimeError(f"ibapi client got {app.count} of {expected} executions")
        seconds = time.perf_counter() - started
        if app.count < expected:
            raise RuntimeError(f"IB replayed {app.count} executions, expected {expected}")
        return seconds
    finally:
        app.disconnect()
        thread.join(10)


def stored(db: Engine, order_ref: str) -> tuple[int, int]:
    """(fills, fills with their commission) of the order."""
    with db.connect() as conn:
        row = conn.execute(
            select(func.count(TradeFill.id), func.count(TradeFill.commission))
            .join(TradeOrder, TradeFill.order_id == TradeOrder.id)
            .where(TradeOrder.client_order_id == order_ref)
        ).one()
    return int(row[0]), int(row[1])


def filled(db: Engine, order_ref: str) -> float:
    """The order's filled quantity: one row, so polling it costs the gateway (in this process)
    nothing that grows with the replay."""
    with db.connect() as conn:
        return float(conn.scalar(select(TradeOrder.filled_qty).where(TradeOrder.client_order_id == order_ref)) or 0)


def order_status(db: Engine, order_ref: str) -> str | None:
    with db.connect() as conn:
        return conn.scalar(select(TradeOrder.status).where(TradeOrder.client_order_id == order_ref))


def gateway(url: str, port: int) -> GatewayThread:
    settings = Settings(database_url=url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{port}", max_deadline_seconds=3600)
    return GatewayThread(settings, timings=EngineTimings(commission_grace=0.5)).start()


class Replay(NamedTuple):
    decoder_alone: float  # seconds from reqExecutions to its end marker, ibapi's decoder doing nothing else
    gateway: float  # seconds from the gateway's start to all executions stored
    connected: float  # ... to the gateway's IB endpoint connected
    first_stored: float  # ... to the first execution stored (0.1 s polls)
    gateway_cpu: float  # CPU seconds of every thread of this process but the polling one, over `gateway`
    writer_cpu: float  # ... of the writer thread alone
    decoding_cpu: float  # ... of ibapi's decoding thread alone
    simulator_cpu: float  # CPU seconds of the simulator's process over `gateway`
    floor_simulator_cpu: float  # ... over `decoder_alone`
    database_cpu: float | None  # ... of the MySQL server over `gateway`; None: SQLite (in the gateway's) or not local
    decoder_cpu: float  # CPU seconds of this process over `decoder_alone` (ibapi's decoder, its reader)


class Bound(NamedTuple):
    """What a replay within 2x the decoder leaves for the gateway's own work on this machine, from
    the floors alone: ibapi's decoding, IB (the simulator) sending, and the replay's rows written
    bare in the gateway's own statements (db_floor's lean batched floor: its client, and a MySQL
    server's CPU; SQLite's engine runs in that client)."""

    least: float  # seconds: the floors' CPU over the machine's cores, however well they overlapped
    room_us: float  # µs an execution left for the rest of the gateway's work at 2x, spread over every core
    room_one_process_us: float  # ... in one process, its threads taking turns (the GIL) with the decoding
    rest_us: float  # µs an execution the gateway used in the replay beyond the decoder's and the bare rows' CPU


def bound(executions: int, cores: int, timed: Replay, rows: db_floor.BareWrite) -> Bound:
    floors = timed.decoder_cpu + timed.floor_simulator_cpu + rows.client_cpu + (rows.server_cpu or 0.0)
    allowed = 2 * timed.decoder_alone  # the target: stored within 2x the decoder alone
    per_execution = 1e6 / executions
    in_process = timed.decoder_cpu + rows.client_cpu  # what of the floors runs in the gateway's process
    return Bound(
        least=floors / cores,
        room_us=(allowed * cores - floors) * per_execution,
        # One process's Python runs one thread at a time: its decoding, its statements and all the
        # rest of its work share the one wall-clock budget (C code that lets go of the GIL aside).
        room_one_process_us=(allowed - in_process) * per_execution,
        rest_us=(timed.gateway_cpu - in_process) * per_execution,
    )


WRITER_THREAD = "execgw-writer"  # the store's ThreadPoolExecutor prefix (server/engine/store.py)
DECODING_THREAD = "ibapi-reader"  # runs EClient.run: ibapi's decoder and the gateway's callbacks


def threads_cpu() -> dict[str, float]:
    """CPU seconds so far of each live thread of this process, by name (a pool's `_N` suffix
    dropped, threads of one name summed)."""
    seconds: dict[str, float] = {}
    for thread in threading.enumerate():
        if thread.ident is None:
            continue
        try:
            used = time.clock_gettime(time.pthread_getcpuclockid(thread.ident))
        except (OSError, ProcessLookupError):  # it ended meanwhile
            continue
        name = re.sub(r"_\d+$", "", thread.name)
        seconds[name] = seconds.get(name, 0.0) + used
    return seconds


MYSQL_SERVERS = frozenset({"mariadbd", "mysqld"})


def database_server_pid(url: str) -> int | None:
    """The process of the MySQL server `url` names, when it runs on this machine (one server)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" or parsed.host not in ("127.0.0.1", "localhost", "::1"):
        return None
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in MYSQL_SERVERS:
                found.append(int(entry.name))
        except OSError:  # it ended meanwhile, or is not ours to read
            continue
    return found[0] if len(found) == 1 else None


def replay(url: str, executions: int, profile: str = "") -> Replay:
    """A replay of `executions` executions, timed."""
    with tempfile.TemporaryDirectory() as folder:
        simulator, port, log = start_simulator(Path(folder), executions)
        order_ref = f"replay-{uuid.uuid4().hex[:8]}"
        db = make_engine(url)
        try:
            first = gateway(url, port)
            try:
                with grpc.insecure_channel(first.target) as channel:
                    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[pb.OrderSpec(
                        client_order_id=order_ref, symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=executions)])
                    request.deadline.FromSeconds(3600)  # the run must not end while it is measured
                    pb_grpc.ExecutionServiceStub(channel).SubmitRun(request, timeout=30)
                submitted = time.monotonic()
                deadline = time.monotonic() + 10
                while order_status(db, order_ref) == "PENDING_SUBMIT":  # until IB has it
                    if time.monotonic() > deadline:
                        raise RuntimeError("IB never acknowledged the order")
                    time.sleep(0.05)
            finally:
                first.stop()
            if stored(db, order_ref)[0]:
                raise RuntimeError("fills reached the first gateway: raise HELD_SECONDS")
            wait_for_executions(log, order_ref, executions, submitted)

            simulator_before, process_before = cpu_seconds(simulator.pid), time.process_time()
            floor = decoder_alone(port, executions)
            decoder_cpu = time.process_time() - process_before
            floor_simulator_cpu = cpu_seconds(simulator.pid) - simulator_before
            time.sleep(1.0)  # IB frees the client id once it saw the socket close (else 326 and a retry)

            profiler = start_profiler(f"{profile}-{executions}.txt") if profile else None
            threads_before = threads_cpu()
            server = database_server_pid(url)
            server_before = cpu_seconds(server) if server else 0.0
            simulator_before = cpu_seconds(simulator.pid)
            process_before, poller_before = time.process_time(), time.thread_time()
            started = time.perf_counter()
            second = gateway(url, port)
            connected = time.perf_counter() - started
            first = 0.0
            try:
                while (shares := filled(db, order_ref)) < executions or stored(db, order_ref) != (executions,) * 2:
                    if shares and not first:
                        first = time.perf_counter() - started
                    if time.perf_counter() - started > 1800:
                        raise RuntimeError(f"only {stored(db, order_ref)} of {executions} stored")
                    time.sleep(0.1)
                seconds = time.perf_counter() - started
                first = first or seconds  # all stored by the first look
                gateway_cpu = (time.process_time() - process_before) - (time.thread_time() - poller_before)
                simulator_cpu = cpu_seconds(simulator.pid) - simulator_before
                server_cpu = cpu_seconds(server) - server_before if server else None
                used = {name: cpu - threads_before.get(name, 0.0) for name, cpu in threads_cpu().items()}
            finally:
                if profiler is not None:
                    stop_profiler(profiler)
                second.stop()
            return Replay(floor, seconds, connected, first, gateway_cpu, used.get(WRITER_THREAD, 0.0),
                          used.get(DECODING_THREAD, 0.0), simulator_cpu, floor_simulator_cpu, server_cpu, decoder_cpu)
        finally:
            db.dispose()
            simulator.terminate()
            simulator.wait(30)


def fresh_database(url: str, folder: Path, executions: int) -> str:
    """A new SQLite file, or a new database on the MySQL server of `url`."""
    if url.startswith("sqlite") or not url:
        return f"sqlite:///{folder}/replay-{executions}-{uuid.uuid4().hex[:8]}.sqlite3"
    parsed = make_url(url)
    name = f"execgw_replay_{uuid.uuid4().hex[:8]}"
    with pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                         password=parsed.password or "") as conn, conn.cursor() as cursor:
        cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return parsed.set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return
    with pymysql.connect(host=parsed.host, port=parsed.port or 3306, user=parsed.username,
                         password=parsed.password or "") as conn, conn.cursor() as cursor:
        cursor.execute(f"DROP DATABASE IF EXISTS `{parsed.database}`")


def bare_write(url: str, executions: int) -> db_floor.BareWrite:
    """The lean batched floor writing `executions` executions' rows into `url`, the CPU of a
    MySQL server on this machine counted."""
    server = database_server_pid(url)
    return db_floor.batched_write(url, executions, lean=True,
                                  server_cpu=(lambda: cpu_seconds(server)) if server else None)


def print_bound(database_url: str, folder: Path, executions: int, timed: Replay) -> None:
    url = fresh_database(database_url, folder, executions)
    try:
        rows = bare_write(url, executions)
    finally:
        drop_database(url)
    cores = os.cpu_count() or 1
    limit = bound(executions, cores, timed, rows)
    server = "" if rows.server_cpu is None else f", the database server {rows.server_cpu:.2f}"
    print(f"{'':>9}the rows written bare in the gateway's statements: {rows.seconds:.2f}s "
          f"({rows.seconds / timed.decoder_alone:.1f}x the decoder), their client {rows.client_cpu:.2f} CPU-s{server}; "
          f"with the decoder's {timed.decoder_cpu:.2f} and the simulator's {timed.floor_simulator_cpu:.2f}: "
          f"at least {limit.least:.2f}s over {cores} cores ({limit.least / timed.decoder_alone:.1f}x); "
          f"2x the decoder leaves the rest of the gateway's work {limit.room_us:.0f} µs an execution over the "
          f"cores, {limit.room_one_process_us:.0f} in one process taking turns (the GIL); it used "
          f"{limit.rest_us:.0f}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    parser.add_argument("--database-url", default="",
                        help="default: SQLite files in a temporary folder; a MySQL URL: a new database on that server "
                             "per size, dropped afterwards")
    parser.add_argument("--py-spy", default="", metavar="PREFIX",
                        help="sample the replay (3) with py-spy into PREFIX-N.txt")
    parser.add_argument("--repeat", type=int, default=1,
                        help="replays per size (each with its own floor), then their median ratio")
    args = parser.parse_args(argv)
    print(f"database: {args.database_url.split(':', 1)[0] or 'sqlite'}")
    with tempfile.TemporaryDirectory() as folder:
        for executions in args.executions:
            ratios = []
            for _ in range(args.repeat):
                load = os.getloadavg()[0]
                url = fresh_database(args.database_url, Path(folder), executions)
                try:
                    timed = replay(url, executions, args.py_spy)
                finally:
                    drop_database(url)
                replayed = timed.gateway - timed.connected
                ratios.append(replayed / timed.decoder_alone)
                print(f"{executions:>7,} executions replayed: all stored {replayed:6.2f}s after IB connected "
                      f"({executions / replayed:,.0f}/s; first stored at {timed.first_stored - timed.connected:.2f}s; "
                      f"gateway start to connected {timed.connected:.2f}s); ibapi's decoder alone "
                      f"{timed.decoder_alone:5.2f}s; ratio {ratios[-1]:4.1f}x; gateway CPU {timed.gateway_cpu:.2f}s "
                      f"(writer {timed.writer_cpu:.2f}, ibapi decoding {timed.decoding_cpu:.2f}) in "
                      f"{timed.gateway:.2f}s; load average {load:.2f} -> {os.getloadavg()[0]:.2f}", flush=True)
                others = timed.simulator_cpu + (timed.database_cpu or 0.0)
                server = "in the gateway's" if timed.database_cpu is None else f"{timed.database_cpu:.2f}s"
                print(f"{'':>9}other processes: simulator {timed.simulator_cpu:.2f}s CPU "
                      f"({timed.floor_simulator_cpu:.2f}s beside the decoder alone), database server {server}; "
                      f"every process's CPU over {os.cpu_count()} cores: at least "
                      f"{(timed.gateway_cpu + others) / (os.cpu_count() or 1):.2f}s", flush=True)
                print_bound(args.database_url, Path(folder), executions, timed)
            if len(ratios) > 1:
                print(f"{executions:>7,} executions: median ratio {statistics.median(ratios):4.1f}x "
                      f"[{min(ratios):.1f}-{max(ratios):.1f}] over {len(ratios)} replays", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
