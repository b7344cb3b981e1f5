"""Fixtures: a real gateway (built-in simulator, SQLite in tmp_path) on a free 127.0.0.1 port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from execgw.client import ExecGwClient, RetryPolicy
from execgw.client.local_gateway import LocalGateway


@pytest.fixture
def gateway(tmp_path: Path) -> Iterator[LocalGateway]:
    with LocalGateway(database_url=f"sqlite:///{tmp_path}/gw.sqlite3", listen="127.0.0.1:0") as running:
        yield running


@pytest.fixture
def gateway_port(gateway: LocalGateway) -> int:
    return gateway.port


@pytest.fixture
def client(gateway: LocalGateway) -> Iterator[ExecGwClient]:
    with ExecGwClient(gateway.target, timeout=10, retry=RetryPolicy(initial_backoff=0.05)) as connected:
        yield connected
