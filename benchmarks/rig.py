"""What every section stands on: a fresh database, the gateway as its own process (as it runs in
production, so its RSS is its own and it shares no GIL with the clients), gRPC helpers, RSS.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import grpc
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from benchmarks.soak import GatewayProcess
from execgw.server.db.engine import make_engine
from execgw.server.db.models import TradeFill, TradeOrder
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

DEFAULT_MYSQL_URL = "mysql+pymysql://root@127.0.0.1:3306/"
RUN_DEADLINE = timedelta(minutes=30)  # runs end when their orders are done, never by deadline here


# -- databases -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    """Where a measurement's data goes: a fresh SQLite file, or a fresh MySQL database created on
    the server `server_url` names and dropped afterwards (so no measurement inherits another's rows)."""

    label: str
    server_url: str | None = None  # None: SQLite

    @contextlib.contextmanager
    def fresh(self, folder: Path) -> Iterator[str]:
        if self.server_url is None:
            path = folder / f"bench-{uuid.uuid4().hex[:8]}.sqlite3"
            try:
                yield f"sqlite:///{path}"
            finally:
                for leftover in folder.glob(path.name + "*"):
                    leftover.unlink(missing_ok=True)
            return
        base = make_url(self.server_url)
        name = f"{base.database or 'execgw'}_bench_{uuid.uuid4().hex[:10]}"
        admin = create_engine(base, connect_args={"connect_timeout": 5})
        try:
            with admin.connect() as conn:
                conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
            yield base.set(database=name).render_as_string(hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            admin.dispose()


def sqlite_database() -> Database:
    return Database("sqlite")


def mysql_database(url: str) -> Database | str:
    """The MySQL/MariaDB server of `url` as a Database, or why it cannot be used."""
    engine = create_engine(make_url(url).set(database=None), connect_args={"connect_timeout": 3})
    try:
        with engine.connect() as conn:
            version = str(conn.execute(text("SELECT VERSION()")).scalar())
    except Exception as exc:  # any reason to not reach it is a reason to skip it
        return f"{make_url(url).render_as_string(hide_password=True)} not reachable: {type(exc).__name__}: {exc}"
    finally:
        engine.dispose()
    kind = "mariadb" if "mariadb" in version.lower() else "mysql"
    return Database(f"{kind} {version.split('-')[0]}", url)


def count_fills(database_url: str, order_refs: list[str]) -> int:
    """Fills stored for these client_order_ids."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(
                select(func.count()).select_from(TradeFill).join(TradeOrder, TradeFill.order_id == TradeOrder.id)
                .where(TradeOrder.client_order_id.in_(order_refs))
            ).scalar() or 0)
    finally:
        engine.dispose()


# -- the gateway -----------------------------------------------------------------------------------


def gateway_env(**settings: object) -> dict[str, str]:
    """EXECGW_* variables: the gateway reads them into its Settings (e.g. max_orders_per_run=1000)."""
    return {f"EXECGW_{name.upper()}": str(value) for name, value in settings.items()}


@contextlib.contextmanager
def gateway(database_url: str, sim_port: int, folder: Path, **settings: object) -> Iterator[GatewayProcess]:
    """`execgw serve` on the database and simulator, connected to IB, stopped (SIGTERM) after."""
    log = folder / f"gateway-{uuid.uuid4().hex[:6]}.log"
    process = GatewayProcess(database_url, sim_port, log, env=gateway_env(**settings))
    try:
        process.start(timeout=120)
        yield process
    finally:
        process.stop()


def gateway_pid(process: GatewayProcess) -> int:
    assert process.process is not None
    return process.process.pid


def cpu_seconds(pid: int) -> float:
    """CPU time a process has used so far, user and system (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float:
    """Resident set size of a process in MiB: psutil if installed, else /proc/<pid>/status."""
    try:
        import psutil
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError(f"no VmRSS for process {pid}") from None
    return float(psutil.Process(pid).memory_info().rss) / 2**20


# -- gRPC --------------------------------------------------------------------------------------------


@contextlib.contextmanager
def stub_for(target: str) -> Iterator[pb_grpc.ExecutionServiceStub]:
    channel = grpc.insecure_channel(target)
    try:
        yield pb_grpc.ExecutionServiceStub(channel)
    finally:
        channel.close()


def submit(stub: pb_grpc.ExecutionServiceStub, orders: list[tuple[str, str, float]], timeout: float = 60) -> str:
    """One run of market BUY orders (client_order_id, symbol, quantity); returns its run id."""
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
        pb.OrderSpec(client_order_id=ref, symbol=symbol, side=pb.ORDER_SIDE_BUY, quantity=quantity)
        for ref, symbol, quantity in orders])
    request.deadline.FromTimedelta(RUN_DEADLINE)
    return stub.SubmitRun(request, timeout=timeout).run.run_id


def wait_order_status(stub: pb_grpc.ExecutionServiceStub, run_id: str, status: int, timeout: float = 30) -> None:
    """Until every order of the run has `status` in the gateway's books."""
    deadline = time.monotonic() + timeout
    while True:
        run = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run
        if run.orders and all(o.status == status for o in run.orders):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id}: orders not {pb.OrderStatus.Name(status)} within {timeout:g}s")
        time.sleep(0.05)


def follow_to_final(stub: pb_grpc.ExecutionServiceStub, run_id: str, timeout: float) -> list[pb.RunEvent]:
    """Every event of the run, from the start to its final status, as one watcher receives them."""
    events = []
    for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=timeout):
        if message.HasField("event"):
            events.append(message.event)
            if message.event.HasField("run_status") and message.event.run_status.final:
                break
    return events
