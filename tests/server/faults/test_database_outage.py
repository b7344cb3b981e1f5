"""MariaDB stops in the middle of a run and comes back: IB's events are held, written when it
returns, nothing reaches a watcher before it is stored, and no fill is lost.

Runs a MariaDB server of its own (mariadb-install-db + mariadbd on a free loopback port), so
that stopping it touches nothing else."""

from __future__ import annotations

import dataclasses
import logging
import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path

import grpc
import pymysql
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from execgw.server.api.health import REASON_KEY
from execgw.server.config import Settings
from execgw.server.db.migrations import upgrade
from execgw.server.embedded import GatewayThread
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import admin_pb2, admin_pb2_grpc
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

pytestmark = pytest.mark.mysql
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING




def database_health(channel: grpc.Channel) -> tuple[int, str]:
    """Health `execgw.database`: its status and the reason it gives (trailing metadata)."""
    reply, call = health_pb2_grpc.HealthStub(channel).Check.with_call(
        health_pb2.HealthCheckRequest(service="execgw.database"), timeout=5)
    return reply.status, dict(call.trailing_metadata() or ()).get(REASON_KEY, "")


class PrivateMariaDB:
    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def install(self) -> None:
        subprocess.run(
            ["mariadb-install-db", "--no-defaults", f"--datadir={self.folder / 'data'}", "--user=root",
             "--auth-root-authentication-method=normal", "--skip-test-db"],
            check=True, capture_output=True, timeout=60,
        )

    def start(self) -> None:
        with (self.folder / "mariadbd.log").open("ab") as log:
            self.process = subprocess.Popen(
                ["mariadbd", "--no-defaults", f"--datadir={self.folder / 'data'}", f"--port={self.port}",
                 "--bind-address=127.0.0.1", f"--socket={self.folder / 'mariadbd.sock'}", "--user=root",
                 "--skip-log-bin", "--innodb-buffer-pool-size=32M"],
                stdout=log, stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                pymysql.connect(host="127.0.0.1", port=self.port, user="root", connect_timeout=1).close()
                return
            except pymysql.err.OperationalError:
                assert time.monotonic() < deadline, (self.folder / "mariadbd.log").read_text()[-2000:]
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(30)

    def hang(self) -> None:
        """SIGSTOP: the server keeps its sockets open and answers nothing, as a wedged one does."""
        assert self.process is not None
        self.process.send_signal(signal.SIGSTOP)

    def wake(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGCONT)

    @property
    def url(self) -> str:
        return f"mysql+pymysql://root@127.0.0.1:{self.port}/execgw"


@pytest.fixture
def mariadb(tmp_path, mysql_server_url, free_port):  # mysql_server_url: fails in CI when MySQL is absent
    if shutil.which("mariadb-install-db") is None or shutil.which("mariadbd") is None:
        pytest.fail("mariadb-install-db and mariadbd are needed for the database outage test")
    server = PrivateMariaDB(tmp_path, free_port())
    server.install()
    server.start()
    connection = pymysql.connect(host="127.0.0.1", port=server.port, user="root")
    connection.cursor().execute("CREATE DATABASE execgw")
    connection.close()
    upgrade(server.url)
    yield server
    server.wake()  # a test that failed while the server hung must not leave it stopped
    server.stop()


@pytest.mark.parametrize("held", [100_000, 3], ids=["held", "over-the-bound"])
def test_a_database_outage_mid_run_holds_ib_events_and_loses_nothing(mariadb, test_timings, held, caplog):
    """Within the bound the held events are written when the database returns; past it the
    gateway drops what IB sends, refuses new runs, and recovers the rest by reconciling. A
    watcher that keeps reading through the outage receives nothing until the database is back."""
    caplog.set_level(logging.INFO, logger="execgw")
    # Slow enough that most fills arrive while the database hangs, even on a loaded machine.
    sim = SimulatorThread(scenario=Scenario.from_dict({"default": {"fills": 10, "fill_interval": 0.6}}))
    sim.start()
    gateway = GatewayThread(
        Settings(database_url=mariadb.url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{sim.port}"),
        timings=dataclasses.replace(test_timings, max_held_events=held),
    ).start()
    channel = grpc.insecure_channel(gateway.target)
    stub = pb_grpc.ExecutionServiceStub(channel)
    try:
        run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
            pb.OrderSpec(client_order_id="outage-1", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=100),
        ]), timeout=10).run.run_id
        arrivals: list[tuple[float, pb.RunEvent]] = []

        def keep_watching() -> None:
            for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=90):
                if message.HasField("event"):
                    arrivals.append((time.monotonic(), message.event))

        watcher = threading.Thread(target=keep_watching, daemon=True)
        watcher.start()
        seen = []
        for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=60):
            if message.HasField("event"):
                seen.append(message.event)
                if sum(e.HasField("fill") for e in seen) == 2:
                    break
        stopping_at = time.monotonic()
        mariadb.stop()
        stopped_at = time.monotonic()
        time.sleep(1.5)  # fills keep coming from IB while the database is down
        with pytest.raises(grpc.RpcError) as refused:
            stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
                pb.OrderSpec(client_order_id="outage-2", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=1),
            ]), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        assert "outage-2" not in [o.order_ref for o in sim.orders()]
        restarting_at = time.monotonic()
        mariadb.start()
        for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=seen[-1].sequence), timeout=60):
            if message.HasField("event"):
                seen.append(message.event)
        assert seen[-1].run_status.status == pb.RUN_STATUS_SUCCESS
        run = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run
        assert [e.sequence for e in seen] == list(range(1, run.last_sequence + 1))
        truth = sorted(e.exec_id for e in sim.executions())
        assert sorted(f.exec_id for f in run.orders[0].fills) == truth and len(truth) == 10
        assert run.orders[0].filled_quantity == 100
        assert all(f.HasField("commission") for f in run.orders[0].fills)

        watcher.join(30)
        assert [e.sequence for _, e in arrivals] == [e.sequence for e in seen], "the live watcher saw every event"
        during = [e.sequence for at, e in arrivals if stopped_at + 0.5 < at < restarting_at]
        assert during == [], f"events {during} reached a watcher while the database was down"
        assert any(at < stopping_at for at, _ in arrivals) and any(at > restarting_at for at, _ in arrivals)
        dropped = any("dropping IB's reports" in r.getMessage() for r in caplog.records)
        assert dropped == (held == 3), "reports are dropped past the bound, and only then"
    finally:
        channel.close()
        gateway.stop()
        sim.stop()


def test_a_hung_database_is_an_outage_new_runs_are_unavailable_and_held_reports_are_written(
    mariadb, test_timings, caplog, eventually
):
    """SIGSTOP keeps MariaDB's sockets open and silent. With read/write timeouts the gateway
    notices, holds IB's reports, answers SubmitRun UNAVAILABLE in bounded time (not
    DEADLINE_EXCEEDED), and after SIGCONT writes what it held: every fill once, nothing lost."""
    caplog.set_level(logging.INFO, logger="execgw")
    # Slow enough that most fills arrive while the database hangs, even on a loaded machine.
    sim = SimulatorThread(scenario=Scenario.from_dict({"default": {"fills": 10, "fill_interval": 0.6}}))
    sim.start()
    timeout = 1.0
    gateway = GatewayThread(
        Settings(database_url=mariadb.url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{sim.port}",
                 database_timeout_seconds=timeout),
        timings=test_timings,
    ).start()
    channel = grpc.insecure_channel(gateway.target)
    stub = pb_grpc.ExecutionServiceStub(channel)
    try:
        run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
            pb.OrderSpec(client_order_id="hung-1", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=100),
        ]), timeout=10).run.run_id
        seen: list[pb.RunEvent] = []
        for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=60):
            if message.HasField("event"):
                seen.append(message.event)
                if any(e.HasField("fill") for e in seen):
                    break
        mariadb.hang()
        time.sleep(1.5)  # fills keep coming from IB while the database hangs

        asked = time.monotonic()
        with pytest.raises(grpc.RpcError) as refused:
            stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
                pb.OrderSpec(client_order_id="hung-2", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=1),
            ]), timeout=30)
        answered_in = time.monotonic() - asked
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, refused.value.details()
        assert answered_in < 10 * timeout, f"SubmitRun took {answered_in:.1f}s to say UNAVAILABLE"
        assert "hung-2" not in [o.order_ref for o in sim.orders()]
        # The writer notices on its own clock: its write, begun when the next fill came, takes a
        # ping and a reconnect to time out (about two timeouts), possibly after SubmitRun answered.
        eventually(lambda: any("holding" in r.getMessage() and "IB events" in r.getMessage()
                               for r in caplog.records),
                   timeout=10 * timeout, what="the writer noticing the hung database")

        mariadb.wake()
        for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=seen[-1].sequence), timeout=60):
            if message.HasField("event"):
                seen.append(message.event)
        assert seen[-1].run_status.status == pb.RUN_STATUS_SUCCESS
        assert any("held IB events written" in r.getMessage() for r in caplog.records)
        run = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run
        assert [e.sequence for e in seen] == list(range(1, run.last_sequence + 1))
        truth = sorted(e.exec_id for e in sim.executions() if e.order_ref == "hung-1")
        stored = sorted(f.exec_id for f in run.orders[0].fills)
        assert stored == truth and len(truth) == 10, "every fill stored once"
        assert sorted(e.fill.fill.exec_id for e in seen if e.HasField("fill")) == truth, "every fill streamed once"
        assert run.orders[0].filled_quantity == 100
        assert all(f.HasField("commission") for f in run.orders[0].fills)
    finally:
        mariadb.wake()
        channel.close()
        gateway.stop()
        sim.stop()


def test_database_health_goes_not_serving_with_its_reason_during_an_outage_and_back(mariadb, test_timings, eventually):
    """Health `execgw.database` follows the writer: NOT_SERVING (with the reason) from the first
    failed write of an outage, SERVING again once the held reports are written; GetStatus says
    the same and that it cannot list runs meanwhile; the metrics count the outage once."""
    sim = SimulatorThread(scenario=Scenario.from_dict({"default": {"fills": 10, "fill_interval": 0.4}}))
    sim.start()
    gateway = GatewayThread(
        Settings(database_url=mariadb.url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{sim.port}",
                 metrics_listen="127.0.0.1:0"),
        timings=test_timings,
    ).start()
    channel = grpc.insecure_channel(gateway.target)
    stub = pb_grpc.ExecutionServiceStub(channel)
    admin_stub = admin_pb2_grpc.AdminServiceStub(channel)

    try:
        assert database_health(channel) == (SERVING, "")
        run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
            pb.OrderSpec(client_order_id="health-1", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=100),
        ]), timeout=10).run.run_id
        seen = []
        for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=60):
            if message.HasField("event"):
                seen.append(message.event)
                if any(e.HasField("fill") for e in seen):
                    break
        mariadb.stop()
        eventually(lambda: database_health(channel)[0] == NOT_SERVING, timeout=15, what="health noticing the outage")
        assert "not taking the gateway's writes" in database_health(channel)[1]
        status = admin_stub.GetStatus(admin_pb2.GetStatusRequest(), timeout=30)
        assert not status.database.taking_writes and not status.database.accepting_runs
        assert status.lists_unavailable and list(status.open_runs) == []
        eventually(lambda: admin_stub.GetStatus(admin_pb2.GetStatusRequest(), timeout=30).database.reports_held > 0,
                   timeout=10, what="IB's reports held")

        mariadb.start()
        eventually(lambda: database_health(channel) == (SERVING, ""), timeout=30, what="health seeing the database back")
        status = admin_stub.GetStatus(admin_pb2.GetStatusRequest(), timeout=10)
        assert status.database.taking_writes and status.lists_unavailable == ""
        assert [r.run_id for r in status.open_runs] in ([run_id], []), "listed again (or already finished)"
        for message in stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=seen[-1].sequence), timeout=60):
            if message.HasField("event"):
                seen.append(message.event)
        assert seen[-1].run_status.status == pb.RUN_STATUS_SUCCESS
        metrics = gateway.gateway.metrics
        assert metrics is not None and metrics.outages.outages == 1, "one outage, counted once"
    finally:
        channel.close()
        gateway.stop()
        sim.stop()


@pytest.mark.parametrize("outage", ["stopped", "hung"])
def test_an_idle_gateway_reports_its_database_gone_when_health_is_asked(mariadb, test_timings, eventually, outage):
    """With nothing to write the writer learns nothing of an outage: health asks the database
    itself (at most once a second), so a probe polling `execgw.database` sees it go and return."""
    sim = SimulatorThread()
    sim.start()
    gateway = GatewayThread(
        Settings(database_url=mariadb.url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{sim.port}",
                 database_timeout_seconds=1.0),
        timings=test_timings,
    ).start()
    channel = grpc.insecure_channel(gateway.target)

    try:
        assert database_health(channel) == (SERVING, "")
        if outage == "stopped":
            mariadb.stop()
        else:
            mariadb.hang()
        eventually(lambda: database_health(channel)[0] == NOT_SERVING, timeout=20, what="health noticing the idle outage")
        assert "the database does not answer" in database_health(channel)[1]
        if outage == "stopped":
            mariadb.start()
        else:
            mariadb.wake()
        eventually(lambda: database_health(channel) == (SERVING, ""), timeout=30, what="health seeing the database back")
    finally:
        channel.close()
        gateway.stop()
        sim.stop()
