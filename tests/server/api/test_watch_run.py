"""WatchRun: replay then live, gap-free and without duplicates, for every kind of watcher; each
event already in the database when it reaches a watcher; heartbeats; shutdown; unknown runs."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest
from sqlalchemy import Connection, Engine, select
from sqlalchemy import event as sa_event
from sqlalchemy.orm import Session

from execgw.server.db.models import TradeEvent
from execgw.v1 import execution_pb2 as pb


def as_tuples(events: list[pb.RunEvent]) -> list[tuple[int, str, bytes]]:
    def body(event: pb.RunEvent) -> bytes:
        return getattr(event, event.WhichOneof("event")).SerializeToString(deterministic=True)

    return [(e.sequence, e.WhichOneof("event"), body(e)) for e in events]


def test_three_watchers_early_late_and_resuming_see_the_same_events_as_the_database(start_gateway):
    live = start_gateway({"default": {"fills": 3, "fill_interval": 0.1}})
    run_id = live.submit(live.order("a"), live.order("b", "MSFT", "SELL", 6)).run.run_id

    early: list[pb.RunEvent] = []
    watcher = threading.Thread(target=lambda: early.extend(live.watch(run_id)))
    watcher.start()

    # The resuming watcher drops its stream after three events, then resumes from the last one.
    resumed: list[pb.RunEvent] = []
    call = live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30)
    for message in call:
        if message.HasField("event"):
            resumed.append(message.event)
        if len(resumed) == 3:
            call.cancel()
            break
    resumed.extend(live.watch(run_id, after=resumed[-1].sequence))

    watcher.join(30)
    late = live.watch(run_id)  # joins after the run finished: all of it from the database

    stored = live.event_rows(run_id)
    assert [e.sequence for e in early] == [row.sequence for row in stored] == list(range(1, len(stored) + 1))
    assert as_tuples(early) == as_tuples(resumed) == as_tuples(late)
    assert early[-1].run_status.final and early[-1].run_status.status == pb.RUN_STATUS_SUCCESS


class CommitsHeldOpen:
    """Holds the gateway's commits of a run's events open, to see whether a watcher gets any of
    them before they are committed.

    Hooked on SQLAlchemy's events, not on the store, so it holds whatever writes the event rows,
    however it writes them (ORM flush, Core, the driver's executemany, values as parameters or as
    literals): a connection that sent an INSERT into trade_events reads, just before its COMMIT,
    the run's sequences it can see and that are not committed yet, which are its own. Once armed,
    each of the next `holds` commits that carries events of the run is held until the watcher
    receives one of those events (it must not: that is the bug) or `hold_seconds` pass. Every
    event the watcher receives is checked against what committed.
    """

    def __init__(self, run_id: str, holds: int = 3, hold_seconds: float = 1.5) -> None:
        self.run_id = run_id
        self.holds_left = holds
        self.hold_seconds = hold_seconds
        self.armed = threading.Event()
        self.lock = threading.Lock()
        self.committed: set[int] = set()
        self.held: set[int] = set()
        self.received_while_held = threading.Event()
        self.held_commits = 0
        self.early: list[int] = []  # sequences a watcher received before their commit

    def before_cursor_execute(self, conn: Connection, _cursor: object, statement: str, _parameters: Any,
                              _context: object, _executemany: bool) -> None:
        """Notes the connections that write event rows."""
        if statement.lstrip().lower().startswith(("insert into trade_events", "insert into `trade_events`")):
            conn.info["writes_events"] = True

    def before_commit(self, session: Session) -> None:
        conn = session.connection()
        pending: set[int] = set()
        if conn.info.pop("writes_events", False):
            # Its own rows, not yet committed, are visible to the transaction that wrote them; the
            # writer is the only one writing them, one transaction after another.
            seen = conn.execute(select(TradeEvent.sequence).where(TradeEvent.run_id == self.run_id)).scalars()
            with self.lock:
                pending = set(seen) - self.committed
        session.info["held_sequences"] = pending
        if not pending or not self.armed.is_set() or self.holds_left <= 0:
            return
        self.holds_left -= 1
        with self.lock:
            self.held = set(pending)
            self.received_while_held.clear()
        self.held_commits += 1
        self.received_while_held.wait(self.hold_seconds)

    def after_commit(self, session: Session) -> None:
        with self.lock:
            self.committed.update(session.info.pop("held_sequences", set()))
            self.held = set()

    def after_rollback(self, session: Session) -> None:
        session.info.pop("held_sequences", None)

    def on_rollback(self, conn: Connection) -> None:
        conn.info.pop("writes_events", None)

    def on_event(self, event: pb.RunEvent) -> None:
        with self.lock:
            if event.sequence in self.committed:
                return
            self.early.append(event.sequence)
            if event.sequence in self.held:
                self.received_while_held.set()

    def __enter__(self) -> CommitsHeldOpen:
        sa_event.listen(Engine, "before_cursor_execute", self.before_cursor_execute)
        sa_event.listen(Engine, "rollback", self.on_rollback)
        for name in ("before_commit", "after_commit", "after_rollback"):
            sa_event.listen(Session, name, getattr(self, name))
        return self

    def __exit__(self, *exc_info: object) -> None:
        sa_event.remove(Engine, "before_cursor_execute", self.before_cursor_execute)
        sa_event.remove(Engine, "rollback", self.on_rollback)
        for name in ("before_commit", "after_commit", "after_rollback"):
            sa_event.remove(Session, name, getattr(self, name))


def test_every_event_is_in_the_database_before_a_watcher_receives_it(start_gateway, eventually):
    """Deterministic: the commits of the fills are held open while a watcher is connected; an
    event published before its commit reaches the watcher during the hold, every time."""
    live = start_gateway({"default": {"outcome": "rest"}})
    orders = [live.order(name) for name in ("a", "b", "c")]
    run_id = live.submit(*orders).run.run_id
    for order in orders:
        live.sim.wait_for_order(order.client_order_id, timeout=10, status="Submitted")
    # And stored: a transaction under way while the hook below is installed would commit events
    # the hook never saw written, which it would then take for events sent before their commit.
    eventually(lambda: [o.status for o in live.orders(run_id)] == ["SUBMITTED"] * 3, 10,
               "the orders' Submitted statuses stored")
    missing: list[int] = []
    events: list[pb.RunEvent] = []

    with CommitsHeldOpen(run_id) as commits:
        # What committed before the hook was installed is in the database already.
        commits.committed.update(row.sequence for row in live.event_rows(run_id))

        def check(event: pb.RunEvent) -> None:
            commits.on_event(event)
            with live.session() as session:
                row = session.scalar(
                    select(TradeEvent.id).where(TradeEvent.run_id == run_id, TradeEvent.sequence == event.sequence)
                )
            if row is None:
                missing.append(event.sequence)
            if not commits.armed.is_set():
                commits.armed.set()  # the watcher is live: hold what comes next

        watcher = threading.Thread(target=lambda: events.extend(live.watch(run_id, on_event=check)))
        watcher.start()
        assert commits.armed.wait(10), "the watcher received nothing"
        for order in orders:
            live.sim.release_order(order.client_order_id)
        watcher.join(30)

    assert events and events[-1].run_status.final
    assert commits.held_commits >= 2, "the fills' commits were not held, so the test proved nothing"
    assert commits.early == [], f"events {commits.early} reached the watcher before their commit"
    assert missing == []


def test_watching_from_a_sequence_replays_only_what_comes_after_it(live):
    run, events = live.run_to_end(live.order("a"))
    tail = live.watch(run.run_id, after=4)
    assert [e.sequence for e in tail] == [e.sequence for e in events if e.sequence > 4]


def test_a_quiet_stream_gets_heartbeats_and_a_busy_one_none(start_gateway):
    """One order fills five times in quick succession, the other rests: the stream is busy, then
    quiet. Heartbeats come only after `heartbeat_seconds` of quiet, and say how far it is."""
    beat = 0.5
    live = start_gateway({"default": {"outcome": "rest"},
                          "orders": {"*-busy": {"outcome": "fill", "fills": 5, "fill_interval": 0.05}}},
                         heartbeat_seconds=beat)
    run_id = live.submit(live.order("busy", quantity=5), live.order("quiet")).run.run_id
    call = live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=15)
    heartbeats: list[pb.Heartbeat] = []
    events: list[pb.RunEvent] = []
    for message in call:
        if message.HasField("event"):
            events.append(message.event)
        if message.HasField("heartbeat"):
            heartbeats.append(message.heartbeat)
            if len(heartbeats) == 3:
                call.cancel()
                break
    assert sum(e.HasField("fill") for e in events) == 5
    assert heartbeats[-1].last_sequence == events[-1].sequence, "a heartbeat says how far the stream is"
    times = [h.server_time.ToNanoseconds() / 1e9 for h in heartbeats]
    assert abs(times[-1] - time.time()) < 5 and any(h.server_time.nanos for h in heartbeats)
    # Never closer together than the quiet that makes one, and the first only after that much
    # quiet following the last event (a timer left over from a busy moment must not fire).
    last_event = events[-1].stored_at.ToNanoseconds() / 1e9
    gaps = [b - a for a, b in zip([last_event, *times[:-1]], times, strict=True)]
    assert min(gaps) >= beat * 0.95, gaps


def test_an_unknown_run_is_not_found_and_a_missing_run_id_is_invalid(live):
    with pytest.raises(grpc.RpcError) as caught:
        list(live.stub.WatchRun(pb.WatchRunRequest(run_id="3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"), timeout=5))
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as caught:
        list(live.stub.WatchRun(pb.WatchRunRequest(), timeout=5))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.RpcError) as caught:
        live.stub.GetRun(pb.GetRunRequest(run_id="3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND


def test_shutdown_ends_watch_streams_with_a_status_that_says_resume(start_gateway):
    live = start_gateway({"default": {"outcome": "rest"}})
    run_id = live.submit(live.order("open")).run.run_id
    call = live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=20)
    seen = []

    def read() -> None:
        try:
            for message in call:
                seen.append(message)
        except grpc.RpcError as error:
            seen.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    while not seen:
        threading.Event().wait(0.05)
    live.gateway.stop()
    reader.join(10)
    error = seen[-1]
    assert isinstance(error, grpc.RpcError)
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert "resume with after_sequence=" in error.details()


def test_a_watcher_that_falls_behind_is_told_to_resume_and_loses_nothing(start_gateway):
    live = start_gateway({"default": {"fills": 40, "fill_delay": 0.5}}, watcher_queue_events=5)
    run_id = live.submit(live.order("flood", quantity=40)).run.run_id
    seen: list[pb.RunEvent] = []
    cuts = []
    while not (seen and seen[-1].run_status.final):
        try:
            for message in live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=len(seen)), timeout=20):
                if message.HasField("event"):
                    seen.append(message.event)
        except grpc.RpcError as cut:  # resume as the message says, as execgw.client does by itself
            assert cut.code() == grpc.StatusCode.UNAVAILABLE
            assert f"fell behind; resume with after_sequence={seen[-1].sequence}" in cut.details()
            cuts.append(cut)
    assert cuts, "the flood should have outrun a 5-event watcher queue"
    assert [e.sequence for e in seen] == [row.sequence for row in live.event_rows(run_id)]
    assert seen[-1].run_status.final
