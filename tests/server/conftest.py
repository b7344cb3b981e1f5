"""End-to-end harness: the real gateway (grpc.aio server, engine, store, ibapi over TCP) against
the TWS simulator, driven with blocking gRPC stubs and checked against the database."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from execgw.server.config import Settings
from execgw.server.db.engine import make_engine
from execgw.server.db.models import TradeEvent, TradeFill, TradeOrder, TradeRun
from execgw.server.embedded import GatewayThread
from execgw.server.engine.runs import EngineTimings
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

EXECGW = Path(sys.executable).parent / "execgw"  # the console script of the venv running the tests

# Short waits so the deadline and late-fill paths run in seconds, not minutes.
TEST_TIMINGS = EngineTimings(cancel_wait=1.5, reconcile_timeout=5.0, commission_grace=1.0, retry_interval=0.3)


@dataclass
class LiveGateway:
    gateway: GatewayThread
    sim: SimulatorThread
    database_url: str
    channel: grpc.Channel
    stub: pb_grpc.ExecutionServiceStub
    db: Engine
    prefix: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def order(self, name: str, symbol: str = "AAPL", side: str = "BUY", quantity: float = 10, **extra: Any) -> pb.OrderSpec:
        return pb.OrderSpec(
            client_order_id=f"{self.prefix}-{name}", symbol=symbol,
            side=pb.ORDER_SIDE_BUY if side == "BUY" else pb.ORDER_SIDE_SELL, quantity=quantity, **extra,
        )

    def submit(self, *orders: pb.OrderSpec, deadline: float | None = None, **extra: Any) -> pb.SubmitRunResponse:
        request = pb.SubmitRunRequest(orders=list(orders), **{"mode": pb.TRADING_MODE_PAPER, **extra})
        if deadline is not None:
            request.deadline.FromTimedelta(timedelta(seconds=deadline))
        return self.stub.SubmitRun(request, timeout=10)

    def watch(self, run_id: str, after: int = 0, timeout: float = 30, on_event: Callable[[pb.RunEvent], None] | None = None) -> list[pb.RunEvent]:
        """Every event of the stream until the server ends it (after the run's final status)."""
        events = []
        for message in self.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=after), timeout=timeout):
            if message.HasField("event"):
                if on_event is not None:
                    on_event(message.event)
                events.append(message.event)
        return events

    def run_to_end(self, *orders: pb.OrderSpec, **kwargs: Any) -> tuple[pb.Run, list[pb.RunEvent]]:
        run_id = self.submit(*orders, **kwargs).run.run_id
        events = self.watch(run_id)
        return self.stub.GetRun(pb.GetRunRequest(run_id=run_id)).run, events

    # -- the database, read directly -----------------------------------------------------------

    def session(self) -> Session:
        return Session(self.db)

    def fills(self, run_id: str) -> list[TradeFill]:
        with self.session() as s:
            return list(s.scalars(
                select(TradeFill).join(TradeOrder, TradeFill.order_id == TradeOrder.id)
                .where(TradeOrder.run_id == run_id).order_by(TradeFill.id)
            ))

    def orders(self, run_id: str) -> list[TradeOrder]:
        with self.session() as s:
            return list(s.scalars(select(TradeOrder).where(TradeOrder.run_id == run_id).order_by(TradeOrder.id)))

    def run_row(self, run_id: str) -> TradeRun:
        with self.session() as s:
            run = s.get(TradeRun, run_id)
            assert run is not None
            return run

    def event_rows(self, run_id: str) -> list[TradeEvent]:
        with self.session() as s:
            return list(s.scalars(select(TradeEvent).where(TradeEvent.run_id == run_id).order_by(TradeEvent.sequence)))

    def counts(self) -> tuple[int, int, int, int]:
        with self.session() as s:
            return tuple(len(list(s.scalars(select(model.id)))) for model in (TradeRun, TradeOrder, TradeFill, TradeEvent))  # type: ignore[return-value]

    def sim_executions(self, prefix: str | None = None) -> list[Any]:
        wanted = prefix or self.prefix
        return [e for e in self.sim.executions() if e.order_ref.startswith(wanted)]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _eventually(condition: Callable[[], object], timeout: float = 15.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        time.sleep(0.05)


@pytest.fixture
def free_port() -> Callable[[], int]:
    """A free loopback port (for processes that must be told their port up front)."""
    return _free_port


@pytest.fixture
def eventually() -> Callable[..., None]:
    """Polls a condition until it holds; fails the test after `timeout` seconds naming `what`."""
    return _eventually


def _without_execgw_settings() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")}


def _serving(channel: grpc.Channel, service: str = "") -> bool:
    try:
        answer = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=2)
    except grpc.RpcError:
        return False
    return answer.status == health_pb2.HealthCheckResponse.SERVING


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Ctrl-C, as an operator would; killed if it does not stop within 20 s."""
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


@pytest.fixture
def clean_environment() -> Callable[[], dict[str, str]]:
    """This process's environment without EXECGW_* variables: a child `execgw` then sees only
    the settings the test gives it, whatever the developer's shell exports."""
    return _without_execgw_settings


@pytest.fixture
def serving() -> Callable[..., bool]:
    """Whether the gateway behind a channel answers SERVING for a health service name ("" = the
    whole server); False while it cannot be reached."""
    return _serving


@pytest.fixture
def execgw_serve(tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """Starts `execgw serve ARGS` in tmp_path, its output in `log`, with a clean environment plus
    `env`; stops every process it started at the end of the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        with log.open("wb") as out:
            process = subprocess.Popen([str(EXECGW), "serve", *args], cwd=tmp_path, stdout=out,
                                       stderr=subprocess.STDOUT, env={**_without_execgw_settings(), **(env or {})})
        started.append(process)
        return process

    yield start
    for process in reversed(started):
        _stop(process)


def _midday_ib_time_zone() -> str:
    hours_east = (24 - datetime.now(UTC).hour) % 24 - 12  # -12..11: local time 12:00-12:59
    return f"Etc/GMT{-hours_east:+d}"  # tz database's Etc names count west as positive


@pytest.fixture
def midday_ib_time_zone() -> str:
    """A TWS login time zone in which it is about noon now. IB's day begins at midnight there,
    and orders up to 15 minutes after it still count as possibly of the day before
    (reconciler.DAY_BOUNDARY_MARGIN): a test whose orders must be of IB's current day sets this
    zone, so that it does not fail when it happens to run just after midnight in New York (the
    default zone; 05:00-05:15 UTC in winter). `start_gateway`'s gateways have it unless a test
    gives another."""
    return _midday_ib_time_zone()


@pytest.fixture
def test_timings() -> EngineTimings:
    return TEST_TIMINGS


@pytest.fixture
def start_gateway(database_url: str) -> Iterator[Callable[..., LiveGateway]]:
    """Starts a simulator with the given scenario and a gateway pointed at it; stops both after.
    The gateway's TWS zone is one where it is noon now (`midday_ib_time_zone`), unless given."""
    started: list[tuple[GatewayThread, SimulatorThread, grpc.Channel, Engine]] = []

    def start(scenario: dict[str, Any] | None = None, sim: SimulatorThread | None = None,
              timings: EngineTimings = TEST_TIMINGS, **settings: Any) -> LiveGateway:
        if sim is None:
            sim = SimulatorThread(scenario=Scenario.from_dict(scenario or {}), seed=len(started))
            sim.start()
        config = Settings(
            database_url=database_url, listen="127.0.0.1:0", ib_paper=f"127.0.0.1:{sim.port}",
            **{"default_deadline_seconds": 20, "heartbeat_seconds": 5, "ib_time_zone": _midday_ib_time_zone(),
               **settings},
        )
        gateway = GatewayThread(config, timings=timings).start()
        channel = grpc.insecure_channel(gateway.target)
        db = make_engine(database_url)
        started.append((gateway, sim, channel, db))
        return LiveGateway(gateway, sim, database_url, channel, pb_grpc.ExecutionServiceStub(channel), db)

    yield start
    for gateway, sim, channel, db in reversed(started):
        channel.close()
        gateway.stop()
        sim.stop()
        db.dispose()


@pytest.fixture
def live(start_gateway: Callable[..., LiveGateway]) -> LiveGateway:
    """A gateway against a simulator that fills every order at once."""
    return start_gateway()
