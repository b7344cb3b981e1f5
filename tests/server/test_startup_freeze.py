"""`execgw serve` takes what start-up made out of the cyclic garbage collector's sight once the
gateway has started (server/app.py: a full collection walked some 90,000 long-lived objects,
42-65 ms, a pause in every commit and watcher; 1.2-2.8 ms with them frozen)."""

from __future__ import annotations

import asyncio
import gc
from collections.abc import Iterator

import pytest

from execgw.server import app
from execgw.server.config import Settings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    yield
    gc.unfreeze()  # the test process's objects go back to the collector


def test_start_up_objects_are_frozen_and_garbage_is_not(unfrozen: None) -> None:
    class Cycle:
        def __init__(self) -> None:
            self.me = self

    Cycle()  # garbage, reachable only from itself
    kept = [{"long": "lived"}]
    app.freeze_startup_objects()
    assert gc.get_freeze_count() > 1000
    assert id(kept) not in {id(o) for o in gc.get_objects()}, "kept objects are out of the collector's generations"
    gc.collect()
    assert gc.get_freeze_count() > 1000, "a collection leaves the frozen objects alone"
    gc.unfreeze()  # what was frozen comes back into sight, garbage included had any been frozen
    assert not [o for o in gc.get_objects() if isinstance(o, Cycle)], "garbage was collected before freezing"


def test_serve_freezes_once_the_gateway_has_started(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    steps: list[str] = []

    async def start(gateway: app.Gateway) -> int:
        steps.append("started")
        asyncio.get_running_loop().call_soon(gateway.on_name_lost)  # ends serve() once it waits
        return 0

    async def stop(gateway: app.Gateway) -> None:
        steps.append("stopped")

    monkeypatch.setattr(app.Gateway, "start", start)
    monkeypatch.setattr(app.Gateway, "stop", stop)
    monkeypatch.setattr(app, "freeze_startup_objects", lambda: steps.append("frozen"))
    asyncio.run(app.serve(Settings(database_url=f"sqlite:///{tmp_path}/f.sqlite3", listen="127.0.0.1:0")))
    assert steps == ["started", "frozen", "stopped"]
