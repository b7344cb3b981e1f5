"""ibapi's decoding waits while too many of IB's reports wait decoded for the writer
(server/ib/backpressure.py): the bound holds in a flood, and every fill is still stored once,
with its commission, and delivered in order; the wait never outlives the database or the
connection."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from execgw.server.ib.backpressure import RECHECK_SECONDS, Backpressure
from execgw.v1 import execution_pb2 as pb


def _waiter(backpressure: Backpressure, connected: threading.Event) -> threading.Thread:
    thread = threading.Thread(target=backpressure.wait_for_room, args=(connected.is_set,), daemon=True)
    thread.start()
    return thread


def test_a_decoder_waits_at_the_bound_and_goes_on_once_reports_are_applied() -> None:
    waiting = [3]
    backpressure = Backpressure(3, lambda: waiting[0])
    connected = threading.Event()
    connected.set()
    thread = _waiter(backpressure, connected)
    time.sleep(3 * RECHECK_SECONDS)
    assert thread.is_alive(), "returned with the bound reached"
    waiting[0] = 2
    backpressure.room_made()
    thread.join(1.0)
    assert not thread.is_alive() and backpressure.waits == 1
    started = time.monotonic()
    backpressure.wait_for_room(connected.is_set, lambda: 0)  # below the bound: no wait
    assert time.monotonic() - started < RECHECK_SECONDS and backpressure.waits == 1
    thread = _waiter(backpressure, connected)
    thread.join(1.0)
    assert not thread.is_alive(), "reports decoded and not yet on the loop count too"
    backpressure.wait_for_room(connected.is_set, lambda: 0)
    blocked = threading.Thread(target=backpressure.wait_for_room, args=(connected.is_set, lambda: 1), daemon=True)
    blocked.start()
    time.sleep(3 * RECHECK_SECONDS)
    assert blocked.is_alive(), "2 waiting + 1 not yet on the loop is the bound"
    waiting[0] = 0
    blocked.join(1.0)
    assert not blocked.is_alive(), "a missed wake-up is made up within RECHECK_SECONDS"


def test_the_wait_ends_when_the_database_goes_down_or_the_connection_closes() -> None:
    backpressure = Backpressure(1, lambda: 5)
    connected = threading.Event()
    connected.set()
    thread = _waiter(backpressure, connected)
    time.sleep(2 * RECHECK_SECONDS)
    assert thread.is_alive()
    backpressure.set_enabled(False)  # the database is down: the held/dropped rule applies instead
    thread.join(1.0)
    assert not thread.is_alive()
    _waiter(backpressure, connected).join(1.0)  # and no new wait while it is down
    backpressure.set_enabled(True)
    thread = _waiter(backpressure, connected)
    time.sleep(2 * RECHECK_SECONDS)
    assert thread.is_alive()
    connected.clear()  # the socket closed: decode what is queued at full speed
    thread.join(1.0)
    assert not thread.is_alive()


def test_a_flood_waits_decoded_within_the_bound_and_every_fill_is_stored_and_delivered(start_gateway, test_timings) -> None:
    limit, executions = 40, 1500
    live = start_gateway({"orders": {"*-flood": {"fills": executions, "price": 101.0}}},
                         timings=replace(test_timings, max_decoded_reports=limit))
    intake = live.gateway.gateway.engine.reports
    session = live.gateway.gateway.engine.sessions["paper"]
    peak, undecoded, done = [0], [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], intake.waiting)
            undecoded[0] = max(undecoded[0], session.undecoded)
            time.sleep(0.0005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        run, events = live.run_to_end(live.order("flood", quantity=executions))
    finally:
        done.set()
        sampler.join(5)
    assert run.status == pb.RUN_STATUS_SUCCESS
    made = sorted(e.exec_id for e in live.sim_executions())
    stored = live.fills(run.run_id)
    assert sorted(f.exec_id for f in stored) == made and len(made) == executions
    assert all(f.commission is not None for f in stored)
    delivered = [e.fill.fill.exec_id for e in events if e.HasField("fill")]
    assert sorted(delivered) == made
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))
    assert intake.backpressure.waits > 0, "the flood never reached the bound"
    # Only reports wait for room; a few other events (errors, end markers) may come in between.
    assert peak[0] <= limit + 10, f"{peak[0]} events waited decoded, bound {limit}"
    # What IB sent meanwhile waited undecoded, and the session says so (a reconciliation's
    # answer there is not yet "unanswered", answers.py).
    assert undecoded[0] > 10 * limit, f"at most {undecoded[0]} messages seen waiting undecoded"
