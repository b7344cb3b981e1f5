"""Fixtures: simulators on free ports (stopped after each test) and ibapi clients (disconnected)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from execgw.sim import Scenario, SimulatorThread, run_in_thread

from .clients import IbApiApp


@pytest.fixture
def sim() -> Iterator[SimulatorThread]:
    with run_in_thread(seed=1) as runner:
        yield runner


@pytest.fixture
def make_sim() -> Iterator[Callable[..., SimulatorThread]]:
    """Starts simulators with a scenario given as plain data; all are stopped after the test."""
    runners: list[SimulatorThread] = []

    def start(scenario: dict[str, Any] | None = None, **kwargs: Any) -> SimulatorThread:
        runner = SimulatorThread(scenario=Scenario.from_dict(scenario or {}), seed=kwargs.pop("seed", 1),
                                 **kwargs)
        runner.start()
        runners.append(runner)
        return runner

    yield start
    for runner in runners:
        runner.stop()


@pytest.fixture
def ibapi_client() -> Iterator[Callable[..., IbApiApp]]:
    """Connects ibapi clients to a port; every one is disconnected at the end of the test."""
    apps: list[IbApiApp] = []

    def connect(port: int, client_id: int = 1) -> IbApiApp:
        app = IbApiApp().start(port, client_id)
        apps.append(app)
        return app

    yield connect
    for app in apps:
        app.stop()
