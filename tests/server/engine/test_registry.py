"""The registry of live gateways (server/engine/registry.py) on SQLite and MariaDB: a name held by
a live gateway is refused, naming it; a name whose holder stopped, whose process on this host is
gone, or whose lease expired is taken over, and the old holder's heartbeat then finds it lost."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import update

from execgw.server.db.engine import make_engine
from execgw.server.db.models import RegisteredGateway
from execgw.server.engine.registry import GatewayNameTaken, GatewayRegistry
from execgw.server.engine.store import Store


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(make_engine(database_url))
    yield store
    store.close()


def registry(store: Store, **kwargs: object) -> GatewayRegistry:
    return GatewayRegistry(store, "a", 15.0, **kwargs)  # type: ignore[arg-type]


def row(store: Store) -> RegisteredGateway:
    return asyncio.run(store.read(lambda s: s.get(RegisteredGateway, "a")))


def age_the_heartbeat(store: Store, by: timedelta) -> None:
    seen_at = row(store).seen_at  # in Python: SQLite has no datetime arithmetic SQLAlchemy spells alike
    with store.engine.begin() as conn:
        conn.execute(update(RegisteredGateway).where(RegisteredGateway.name == "a").values(seen_at=seen_at - by))


def a_dead_pid() -> int:
    finished = subprocess.Popen([sys.executable, "-c", "pass"])
    finished.wait(10)
    return finished.pid


def test_a_name_held_by_a_live_gateway_is_refused_naming_it(store: Store):
    first = registry(store)
    asyncio.run(first.claim())
    asyncio.run(first.advertise("127.0.0.1:5001"))
    second = registry(store)
    with pytest.raises(GatewayNameTaken) as refused:
        asyncio.run(second.claim())
    message = str(refused.value)
    assert "gateway name 'a' is held by a live gateway" in message
    assert f"pid {os.getpid()} on host {first.host}" in message and "127.0.0.1:5001" in message
    assert row(store).instance == first.instance
    assert asyncio.run(first.heartbeat())


def test_a_name_released_in_order_is_taken_at_once(store: Store):
    first = registry(store)
    asyncio.run(first.claim())
    asyncio.run(first.release())
    assert row(store).stopped_at is not None
    second = registry(store)
    asyncio.run(second.claim())
    assert row(store).instance == second.instance and row(store).stopped_at is None
    assert asyncio.run(store.read(lambda s: s.get(RegisteredGateway, "a").address)) is None


def test_a_name_whose_process_on_this_host_is_gone_is_taken_over_at_once(store: Store):
    killed = registry(store, pid=a_dead_pid())  # as after SIGKILL: no release, a fresh heartbeat
    asyncio.run(killed.claim())
    restarted = registry(store)
    asyncio.run(restarted.claim())
    assert row(store).pid == os.getpid()
    assert not asyncio.run(killed.heartbeat())  # the old claim is lost for good


def test_a_name_held_from_another_host_waits_for_its_lease(store: Store):
    elsewhere = registry(store, host="other-host.example", pid=a_dead_pid())  # its pid means nothing here
    asyncio.run(elsewhere.claim())
    here = registry(store)
    with pytest.raises(GatewayNameTaken, match="on host other-host.example"):
        asyncio.run(here.claim())
    age_the_heartbeat(store, timedelta(seconds=14))  # within the lease of 15 s
    with pytest.raises(GatewayNameTaken):
        asyncio.run(here.claim())
    age_the_heartbeat(store, timedelta(seconds=2))  # now 16 s silent
    asyncio.run(here.claim())
    assert row(store).host == here.host
    lost: list[bool] = []
    elsewhere._on_lost = lambda: lost.append(True)
    assert not asyncio.run(elsewhere.heartbeat())


def test_a_heartbeat_keeps_the_lease(store: Store):
    holder = registry(store, host="other-host.example", pid=a_dead_pid())
    asyncio.run(holder.claim())
    age_the_heartbeat(store, timedelta(seconds=16))
    assert asyncio.run(holder.heartbeat())
    with pytest.raises(GatewayNameTaken):
        asyncio.run(registry(store).claim())
