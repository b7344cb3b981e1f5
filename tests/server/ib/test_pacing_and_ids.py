from __future__ import annotations

import asyncio
import time

import pytest

from execgw.server.ib.ids import OrderIdAllocator
from execgw.server.ib.pacing import Pacer


def test_no_more_than_the_limit_is_sent_in_any_one_second_window():
    async def scenario() -> list[float]:
        pacer = Pacer(10)
        stamps = []
        for _ in range(25):
            await pacer.acquire()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(scenario())
    for i in range(len(stamps) - 10):
        assert stamps[i + 10] - stamps[i] >= 0.999


def test_order_ids_only_move_up():
    ids = OrderIdAllocator()
    with pytest.raises(RuntimeError):
        ids.allocate(1)
    ids.raise_floor(100)  # IB's nextValidId
    ids.raise_floor(42)  # a lower one (a Gateway that rolled back) changes nothing
    assert ids.allocate(3) == [100, 101, 102]
    ids.raise_floor(101)
    assert ids.allocate(1) == [103]
