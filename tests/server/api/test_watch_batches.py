"""WatchRun with max_events_per_message: several events a message when they are ready at once,
the same events in the same order as a stream of one event a message and as the database; a
watcher that keeps up still gets each event alone; a bad size is refused naming the field."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime
from types import SimpleNamespace

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from execgw.server.api.service import ExecutionService
from execgw.server.engine.bus import Subscription
from execgw.server.engine.stored_event import StoredEvent
from execgw.v1 import execution_pb2 as pb


def as_tuples(events: list[pb.RunEvent]) -> list[tuple[int, str, bytes]]:
    """Each event as (sequence, kind, its body's bytes): events compare by content."""
    def body(event: pb.RunEvent) -> bytes:
        return getattr(event, event.WhichOneof("event")).SerializeToString(deterministic=True)

    return [(e.sequence, e.WhichOneof("event"), body(e)) for e in events]


def messages(live, run_id: str, most: int, after: int = 0) -> list[pb.WatchRunResponse]:
    """Every message of one stream (heartbeats left out) until the gateway ends it."""
    request = pb.WatchRunRequest(run_id=run_id, after_sequence=after, max_events_per_message=most)
    return [m for m in live.stub.WatchRun(request, timeout=60) if not m.HasField("heartbeat")]


def events_of(batched: list[pb.WatchRunResponse]) -> list[pb.RunEvent]:
    return [event for message in batched for event in message.events.events]


def test_a_finished_run_is_replayed_in_messages_of_the_asked_size_with_the_same_events(start_gateway):
    live = start_gateway({"default": {"fills": 4, "fill_interval": 0.02}})
    run_id = live.submit(*(live.order(f"o{i}", quantity=4) for i in range(5))).run.run_id
    single = live.watch(run_id)  # one event a message, as before the option existed
    stored = live.event_rows(run_id)
    assert len(stored) > 20

    batched = messages(live, run_id, 7)

    assert all(m.WhichOneof("message") == "events" for m in batched)
    # Replayed from the database, a page at a time: every message full but the last.
    assert [len(m.events.events) for m in batched] == [7] * (len(stored) // 7) + ([len(stored) % 7] if len(stored) % 7 else [])
    assert as_tuples(events_of(batched)) == as_tuples(single)
    assert [e.sequence for e in events_of(batched)] == [row.sequence for row in stored]

    # Resuming from a sequence: only what comes after it.
    assert as_tuples(events_of(messages(live, run_id, 5, after=9))) == as_tuples(single[9:])
    # 1 is the stream of one event a message, in `event`.
    assert [m.WhichOneof("message") for m in messages(live, run_id, 1)] == ["event"] * len(stored)


def test_a_live_flood_comes_in_fewer_messages_and_loses_or_repeats_nothing(start_gateway, eventually):
    """Executions back to back: the writer commits several at a time, so several events are
    ready at once for a live watcher, and they share a message."""
    live = start_gateway({"default": {"outcome": "rest", "fills": 150, "fill_interval": 0.0, "price": 100.0}})
    order = live.order("flood", quantity=150)
    run_id = live.submit(order).run.run_id
    got: list[pb.WatchRunResponse] = []
    request = pb.WatchRunRequest(run_id=run_id, max_events_per_message=50)
    call = live.stub.WatchRun(request, timeout=60)
    first = next(call)  # the stream is open: what follows is live
    eventually(lambda: any(o.order_ref == order.client_order_id for o in live.sim.orders()), what="order working at IB")
    reader = threading.Thread(target=lambda: got.extend(m for m in call if not m.HasField("heartbeat")))
    reader.start()
    live.sim.release_order(order.client_order_id)
    reader.join(60)
    assert not reader.is_alive()

    batched = [first, *got]
    sizes = [len(m.events.events) for m in batched]
    stored = live.event_rows(run_id)
    assert [e.sequence for e in events_of(batched)] == [row.sequence for row in stored] == list(range(1, len(stored) + 1))
    assert len([e for e in events_of(batched) if e.HasField("fill")]) == 150
    assert events_of(batched)[-1].run_status.final
    assert max(sizes) <= 50
    assert len(batched) < len(stored), sizes  # some messages carried several events


@pytest.mark.parametrize("size", [-1, 1_001])
def test_a_size_out_of_range_is_refused_naming_the_field(live, size):
    run_id = live.submit(live.order("a")).run.run_id
    request = pb.WatchRunRequest(run_id=run_id, max_events_per_message=size)
    with pytest.raises(grpc.RpcError) as caught:
        list(live.stub.WatchRun(request, timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "max_events_per_message" in caught.value.details()
    status = rpc_status.from_call(caught.value)
    assert status is not None
    bad = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad)
    assert [v.field for v in bad.field_violations] == ["max_events_per_message"]


# -- what the live stream takes from a watcher's queue (no gateway needed) -------------------------

def _event(sequence: int, final: bool = False) -> StoredEvent:
    kind, payload = ("run_status", {"final": True}) if final else ("fill", {})
    return StoredEvent("run", sequence, kind, payload, None, datetime.now(UTC))


def _taken(queued: list[StoredEvent | None], last: int, most: int) -> list[object]:
    """What ExecutionService._live yields for a queue holding `queued`, until it ends or would wait."""
    async def take() -> list[object]:
        subscription = Subscription("run", 100)
        for item in queued:
            subscription.queue.put_nowait(item)
        service = SimpleNamespace(_limits=SimpleNamespace(heartbeat_seconds=60))
        out: list[object] = []
        live = ExecutionService._live(service, subscription, last, None, most)  # type: ignore[arg-type]
        while True:
            try:
                item = await asyncio.wait_for(live.__anext__(), 0.2)
            except (TimeoutError, StopAsyncIteration):
                return out
            out.append([e.sequence for e in item] if isinstance(item, list) else item)

    return asyncio.run(take())


def test_live_takes_up_to_the_size_of_what_is_queued_skipping_repeats_and_wake_ups():
    queued = [_event(3), _event(4), None, _event(4), _event(5), _event(6), _event(7)]
    assert _taken(queued, last=2, most=3) == [[3, 4, 5], [6, 7]]
    # One a message, as before: the nudge in the queue is a heartbeat's turn.
    taken = _taken(queued, last=2, most=1)
    assert isinstance(taken[2], pb.Heartbeat)
    assert taken[:2] + taken[3:] == [[3], [4], [5], [6], [7]]


def test_live_sends_what_comes_before_a_gap_then_asks_for_a_replay_even_after_the_final_status():
    # The final status with a late fill behind it that skipped a sequence: the stream must go
    # back to the database for the missing one, not end at the final status.
    assert _taken([_event(3), _event(4, final=True), _event(6)], last=2, most=10) == [[3, 4], None]


def test_live_ends_at_the_final_status_unless_more_is_queued_behind_it():
    assert _taken([_event(3), _event(4, final=True)], last=2, most=10) == [[3, 4]]
    assert _taken([_event(3), _event(4, final=True), _event(5)], last=2, most=2) == [[3, 4], [5]]
