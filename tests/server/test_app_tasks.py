"""The gateway process owns what it starts: a background task's failure is logged (never lost
in an unawaited task), and the shipped gateway does not load the simulator unless the embedded
default starts it."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys

import pytest

from execgw.server.app import Gateway, endpoint_health_name
from execgw.server.config import Settings


def test_a_failing_health_update_is_logged_with_its_endpoint(caplog: pytest.LogCaptureFixture) -> None:
    gateway = Gateway(Settings(database_url="sqlite://", listen="127.0.0.1:0"))

    async def broken_health(name: str, serving: bool, reason: str = "") -> None:
        raise RuntimeError(f"health store refused {name}")

    async def scenario() -> None:
        working_health = gateway._set_health
        gateway._set_health = broken_health  # type: ignore[method-assign]
        gateway._endpoint_health("paper", True)
        await asyncio.sleep(0.05)
        gateway._set_health = working_health  # type: ignore[method-assign]
        await gateway.stop()

    with caplog.at_level(logging.ERROR):
        asyncio.run(scenario())
    failures = [r for r in caplog.records if r.exc_info and "health-paper" in r.getMessage()]
    assert failures, [r.getMessage() for r in caplog.records]
    assert f"health store refused {endpoint_health_name('paper')}" in str(failures[0].exc_info[1])


def test_the_gateway_imports_the_simulator_only_when_it_starts_one() -> None:
    probe = "import sys, execgw.server.app, execgw.server.engine.engine; print([m for m in sys.modules if m.startswith('execgw.sim')])"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "[]"
