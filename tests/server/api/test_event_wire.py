"""Each stored event is encoded once for all its watchers, and an evicted one is encoded again
correctly (never another event's message)."""

from __future__ import annotations

from datetime import UTC, datetime

from execgw.server.api import convert
from execgw.server.api.event_wire import EncodedEvents
from execgw.server.engine.stored_event import StoredEvent
from execgw.v1 import execution_pb2 as pb


def status_event(run_id: str, sequence: int, status: str) -> StoredEvent:
    payload = {"status": status, "previous_status": "RUN_STATUS_UNSPECIFIED", "reason": f"r{sequence}", "final": False}
    stamp = datetime(2026, 11, 28, 10, 0, sequence, tzinfo=UTC)
    return StoredEvent(run_id, sequence, "run_status", payload, None, stamp)


def test_an_event_is_encoded_once_and_shared():
    encoded = EncodedEvents(capacity=10)
    event = status_event("run-a", 1, "RUN_STATUS_RUNNING")
    first = encoded.response(event)
    # A second watcher (live) and a third (replaying, from a row read again) get the same message.
    again = encoded.response(status_event("run-a", 1, "RUN_STATUS_RUNNING"))
    assert again is first and encoded.encoded == 1
    assert first == pb.WatchRunResponse(event=convert.event_to_proto(event))


def test_events_of_other_runs_and_sequences_are_their_own():
    encoded = EncodedEvents(capacity=10)
    a1 = encoded.response(status_event("run-a", 1, "RUN_STATUS_RUNNING"))
    a2 = encoded.response(status_event("run-a", 2, "RUN_STATUS_SUCCESS"))
    b1 = encoded.response(status_event("run-b", 1, "RUN_STATUS_FAILED"))
    assert (a1.event.run_id, a1.event.sequence, a1.event.run_status.status) == ("run-a", 1, pb.RUN_STATUS_RUNNING)
    assert (a2.event.run_id, a2.event.sequence, a2.event.run_status.status) == ("run-a", 2, pb.RUN_STATUS_SUCCESS)
    assert (b1.event.run_id, b1.event.sequence, b1.event.run_status.status) == ("run-b", 1, pb.RUN_STATUS_FAILED)
    assert encoded.encoded == 3


def test_the_least_recently_used_is_dropped_and_encoded_again_when_needed():
    encoded = EncodedEvents(capacity=2)
    one, two, three = (status_event("run-a", n, "RUN_STATUS_RUNNING") for n in (1, 2, 3))
    first = encoded.response(one)
    encoded.response(two)
    encoded.response(one)  # used again: now two is the least recently used
    encoded.response(three)  # evicts two
    assert encoded.response(one) is first
    assert encoded.encoded == 3
    again = encoded.response(two)
    assert encoded.encoded == 4 and again.event.sequence == 2
