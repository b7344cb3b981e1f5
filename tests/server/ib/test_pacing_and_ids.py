from __future__ import annotations

import asyncio
import time

import pytest

from execgw.server.ib.ids import OrderIdAllocator
from execgw.server.ib.pacing import Pacer, WriteSpacing


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


def test_turns_are_evenly_spaced_not_bursts():
    """Bursts at the ends of two seconds can land in one of IB's windows once IB reads a little
    late; evenly spaced turns cannot (see WriteSpacing)."""
    async def scenario() -> list[float]:
        pacer = Pacer(20)
        stamps = []
        for _ in range(10):
            await pacer.acquire()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(scenario())
    assert min(b - a for a, b in zip(stamps, stamps[1:], strict=False)) >= 0.05 - 1e-3


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def test_writes_leave_evenly_spaced_however_late_they_come():
    clock = FakeClock()
    spacing = WriteSpacing(40, clock=clock, sleep=clock.sleep)
    written = []
    for late_by in [0.0, 0.0, 0.0, 0.2, 0.0, 0.001, 0.0]:  # held up on the way, then all at once
        clock.now += late_by
        spacing.before_write()
        written.append(clock.now)
    gaps = [b - a for a, b in zip(written, written[1:], strict=False)]
    assert min(gaps) >= 0.025 - 1e-9, gaps
    assert spacing.waits == 5  # the first, and the one after the 0.2 s pause, went at once
    assert clock.slept == pytest.approx([0.025, 0.025, 0.025, 0.025 - 0.001, 0.025])


def test_order_ids_only_move_up():
    ids = OrderIdAllocator()
    with pytest.raises(RuntimeError):
        ids.allocate(1)
    ids.raise_floor(100)  # IB's nextValidId
    ids.raise_floor(42)  # a lower one (a Gateway that rolled back) changes nothing
    assert ids.allocate(3) == [100, 101, 102]
    ids.raise_floor(101)
    assert ids.allocate(1) == [103]


def test_an_ib_callback_after_the_loop_closed_is_dropped_quietly():
    """ibapi's thread may still be decoding a backlog when the gateway stops and its loop closes."""
    from execgw.server.ib.session import post_to_loop

    loop = asyncio.new_event_loop()
    seen: list[int] = []
    post_to_loop(loop, seen.append, 1)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    post_to_loop(loop, seen.append, 2)  # no RuntimeError into ibapi's reader thread
    assert seen == [1]
