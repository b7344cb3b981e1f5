from __future__ import annotations

import asyncio
import itertools
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execgw.server.ib.ids import OrderIdAllocator, OrdersWritten
from execgw.server.ib.pacing import TOLERANCE, Pacer, WriteSpacing


def test_no_more_than_the_limit_is_sent_in_any_one_second_window():
    async def scenario() -> list[float]:
        pacer = Pacer(10)
        stamps = []
        for _ in range(25):
            await pacer.acquire()
            stamps.append(time.monotonic())
        return stamps

    stamps = asyncio.run(scenario())
    for i in range(len(stamps) - 10):  # eleven turns never within one second (see Timetable)
        assert stamps[i + 10] - stamps[i] >= 1.0 - TOLERANCE - 1e-3


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
    assert min(b - a for a, b in zip(stamps, stamps[1:], strict=False)) >= 0.05 - TOLERANCE - 1e-3


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


class OvershootingClock(FakeClock):
    """Sleeps wake late by the overshoots given, in turn: the event loop's millisecond waits and
    the OS add a little, a thread waiting for the GIL may add tens of milliseconds."""

    def __init__(self, *overshoots: float) -> None:
        super().__init__()
        self.overshoots = itertools.cycle(overshoots)

    def sleep(self, seconds: float) -> None:
        super().sleep(seconds + next(self.overshoots))


def test_late_wake_ups_do_not_add_up_over_a_long_run():
    """Counted from when each write really left, every wake-up's overshoot lengthened every
    interval: 1,000 orders at 45/s took 7% more than 1,000/45 s. Slots count from slots."""
    clock = OvershootingClock(0.0015)
    spacing = WriteSpacing(45, clock=clock, sleep=clock.sleep)
    written = []
    for _ in range(1_000):
        spacing.before_write()
        written.append(clock.now)
    assert written[-1] - written[0] == pytest.approx(999 / 45, abs=0.002)


@given(late=st.lists(st.sampled_from([0.0, 0.0, 0.0, 0.0005, 0.003, 0.015, 0.03, 0.2]), min_size=60, max_size=160),
       overshoots=st.lists(st.sampled_from([0.0, 0.0005, 0.0015, 0.004, 0.03]), min_size=1, max_size=8))
@settings(max_examples=300, deadline=None)
def test_no_second_ever_holds_more_than_ib_allows_at_the_highest_setting(late: list[float], overshoots: list[float]):
    """At 49 a second (the highest setting), however writes come late and wake-ups overshoot, no
    one-second window holds over 50 (IB's limit), and no two writes are closer than an interval
    less the tolerance."""
    clock = OvershootingClock(*overshoots)
    spacing = WriteSpacing(49, clock=clock, sleep=clock.sleep)
    written = []
    for late_by in late:
        clock.now += late_by
        spacing.before_write()
        written.append(clock.now)
    assert min(b - a for a, b in zip(written, written[1:], strict=False)) >= 1 / 49 - TOLERANCE - 1e-9
    for i, start in enumerate(written):
        assert sum(1 for w in written[i:] if w <= start + 1.0) <= 50


def test_order_ids_only_move_up():
    ids = OrderIdAllocator()
    with pytest.raises(RuntimeError):
        ids.allocate(1)
    ids.raise_floor(100)  # IB's nextValidId
    ids.raise_floor(42)  # a lower one (a Gateway that rolled back) changes nothing
    assert ids.allocate(3) == [100, 101, 102]
    ids.raise_floor(101)
    assert ids.allocate(1) == [103]


def test_orders_written_tells_the_highest_id_that_went_out_on_an_earlier_socket():
    written = OrdersWritten()
    assert written.highest_before(1) == 0
    written.note(1, 5)
    written.note(1, 6)
    assert written.highest_before(1) == 0  # the socket IB answers on: its own writes don't count
    assert written.highest_before(2) == 6
    written.note(3, 9)  # connection 2 wrote nothing
    assert written.highest_before(3) == 6
    assert written.highest_before(4) == 9
    written.note(4, 10)
    written.note(4, 11)
    assert (written.highest_before(4), written.highest_before(5)) == (9, 11)
