"""The gateway runs on uvloop's event loop where uvloop is installed (a dependency on Linux and
macOS), and on asyncio's when `EXECGW_EVENT_LOOP=asyncio` asks for it."""

from __future__ import annotations

import asyncio

import pytest
import uvloop

from execgw.server import event_loop
from execgw.server.embedded import GatewayThread


def test_the_gateway_loop_is_uvloops_unless_asyncios_is_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.CHOICE_ENV, raising=False)
    loop = event_loop.new_event_loop()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
    monkeypatch.setenv(event_loop.CHOICE_ENV, "asyncio")
    loop = event_loop.new_event_loop()
    try:
        assert not isinstance(loop, uvloop.Loop) and isinstance(loop, asyncio.AbstractEventLoop)
    finally:
        loop.close()


def test_run_returns_what_the_coroutine_returns_on_the_chosen_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(event_loop.CHOICE_ENV, raising=False)

    async def which() -> str:
        return type(asyncio.get_running_loop()).__module__

    assert event_loop.run(which()).startswith("uvloop")


def test_the_embedded_gateway_is_built_on_the_chosen_loop(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    monkeypatch.delenv(event_loop.CHOICE_ENV, raising=False)
    gateway = GatewayThread(database_url=f"sqlite:///{tmp_path}/loop.sqlite3")
    try:
        assert isinstance(gateway._loop, uvloop.Loop)
    finally:
        gateway._loop.close()
