"""Two gateways on one database (issue 11): "a" with IB client id 1 and "b" with client id 2, each
with its own event loop, store, engine and IB connection, on one simulator (one TWS) and one
database, on SQLite and on MariaDB. Each owns the runs it takes; the other serves them read-only:
GetRun and ListRuns from the database, WatchRun by tailing the stored events, CancelRun refused.

The process-level cases (SIGKILL, restarts, a second process of one name) are in
tests/server/faults/test_two_gateway_processes.py."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from execgw.v1 import execution_pb2 as pb

LiveGateway = Any  # tests/server/conftest.py's LiveGateway (a conftest is not imported by name)

pytestmark = pytest.mark.timeout(120)

FILLING = {"default": {"fills": 4, "fill_interval": 0.1}, "symbols": {"REST": {"outcome": "rest"}}}


@pytest.fixture
def pair(start_gateway: Callable[..., LiveGateway]) -> tuple[LiveGateway, LiveGateway]:
    a = start_gateway(FILLING, gateway_name="a", ib_client_id=1)
    b = start_gateway(sim=a.sim, gateway_name="b", ib_client_id=2, heartbeat_seconds=0.5)
    return a, b


def watch_in_thread(gateway: LiveGateway, run_id: str, after: int = 0) -> tuple[threading.Thread, list]:
    """A watcher on its own thread; its list holds every message (events and heartbeats)."""
    received: list[pb.WatchRunResponse] = []

    def watch() -> None:
        for message in gateway.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=after), timeout=60):
            received.append(message)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread, received


def events_of(messages: list[pb.WatchRunResponse]) -> list[bytes]:
    return [m.event.SerializeToString(deterministic=True) for m in messages if m.HasField("event")]


def test_a_run_on_a_watched_on_b_streams_exactly_what_a_streams(pair):
    a, b = pair
    run_id = a.submit(a.order("one"), a.order("two", symbol="MSFT")).run.run_id
    # Both watchers open while the fills still come: b's is served live by its tail.
    on_a, from_a = watch_in_thread(a, run_id)
    on_b, from_b = watch_in_thread(b, run_id)
    on_a.join(60)
    on_b.join(60)
    assert not on_a.is_alive() and not on_b.is_alive()
    assert events_of(from_b) == events_of(from_a)  # same sequences, payloads, times
    sequences = [m.event.sequence for m in from_b if m.HasField("event")]
    assert sequences == [row.sequence for row in a.event_rows(run_id)]
    final = [m.event for m in from_b if m.HasField("event")][-1].run_status
    assert final.final and final.status == pb.RUN_STATUS_SUCCESS
    assert sum(m.event.HasField("fill") for m in from_b if m.HasField("event")) == 8
    # The tail ends with its last watcher.
    tails = b.gateway.gateway.foreign_runs
    assert tails is not None
    deadline_ok = _eventually_true(lambda: tails.tailed_runs == 0)
    assert deadline_ok, "b still tails a finished run nobody watches"


def test_a_watcher_on_b_resumes_after_any_sequence(pair):
    a, b = pair
    run_id = a.submit(a.order("one")).run.run_id
    everything = a.watch(run_id)
    cut = len(everything) // 2
    resumed = b.watch(run_id, after=everything[cut - 1].sequence)
    assert [e.SerializeToString(deterministic=True) for e in resumed] == \
        [e.SerializeToString(deterministic=True) for e in everything[cut:]]


def test_a_watcher_on_b_of_a_working_run_gets_heartbeats_then_the_end(pair):
    a, b = pair
    run_id = a.submit(a.order("rests", symbol="REST")).run.run_id
    a.sim.wait_for_order(f"{a.prefix}-rests", timeout=10, status="Submitted")
    thread, received = watch_in_thread(b, run_id)
    assert _eventually_true(lambda: any(m.HasField("heartbeat") for m in received), 10), "no heartbeat on b"
    beat = next(m.heartbeat for m in received if m.HasField("heartbeat"))
    assert beat.last_sequence == [m.event.sequence for m in received if m.HasField("event")][-1]
    a.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30)
    thread.join(30)
    assert not thread.is_alive(), "b's watcher did not end with the run"
    final = [m.event for m in received if m.HasField("event")][-1].run_status
    assert final.final and final.status == pb.RUN_STATUS_CANCELLED
    assert events_of(received) == [e.SerializeToString(deterministic=True) for e in a.watch(run_id)]


def test_get_and_list_on_b_show_as_runs_owned_by_a(pair):
    a, b = pair
    run_a, _ = a.run_to_end(a.order("one"))
    run_b, _ = b.run_to_end(b.order("two"))
    assert run_a.gateway == "a" and run_b.gateway == "b"
    seen_on_b = b.stub.GetRun(pb.GetRunRequest(run_id=run_a.run_id), timeout=10).run
    assert seen_on_b == a.stub.GetRun(pb.GetRunRequest(run_id=run_a.run_id), timeout=10).run
    listed = {r.run_id: r.gateway for r in b.stub.ListRuns(pb.ListRunsRequest(), timeout=10).runs}
    assert listed == {run_a.run_id: "a", run_b.run_id: "b"}
    assert a.run_row(run_a.run_id).gateway == "a"


def test_cancel_on_b_of_a_run_of_a_is_refused_naming_a_and_changes_nothing(pair):
    a, b = pair
    run_id = a.submit(a.order("rests", symbol="REST")).run.run_id
    a.sim.wait_for_order(f"{a.prefix}-rests", timeout=10, status="Submitted")
    _eventually_true(lambda: a.orders(run_id)[0].status == "SUBMITTED", 10)
    before = (_row_state(a.run_row(run_id)), [_row_state(o) for o in a.orders(run_id)], len(a.event_rows(run_id)))
    with pytest.raises(grpc.RpcError) as refused:
        b.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=10)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "owned by gateway 'a'" in refused.value.details()
    assert f"at {a.gateway.target}" in refused.value.details()  # where to cancel it
    status = rpc_status.from_call(refused.value)
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    status.details[0].Unpack(failure)
    assert failure.violations[0].subject == "gateway:a"
    after = (_row_state(a.run_row(run_id)), [_row_state(o) for o in a.orders(run_id)], len(a.event_rows(run_id)))
    assert after == before
    assert not [r for r in a.sim.received_requests() if r.name == "CANCEL_ORDER"]
    # Its own gateway cancels it.
    a.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30)
    assert a.run_row(run_id).status == "CANCELLED"


def test_runs_on_both_at_once_fill_and_never_share_an_order_id_per_client_id(pair):
    a, b = pair
    run_ids: dict[str, list[str]] = defaultdict(list)
    failures: list[BaseException] = []

    def submit(gateway: LiveGateway, name: str, count: int) -> None:
        try:
            for i in range(count):
                response = gateway.submit(gateway.order(f"{name}{i}-x"), gateway.order(f"{name}{i}-y", symbol="MSFT"))
                run_ids[name].append(response.run.run_id)
        except BaseException as exc:  # reported below, on the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=submit, args=(gw, name, 5)) for gw, name in ((a, "a"), (b, "b"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not failures, failures
    for gateway, name, client_id in ((a, "a", 1), (b, "b", 2)):
        for run_id in run_ids[name]:
            final = [e for e in gateway.watch(run_id) if e.HasField("run_status") and e.run_status.final]
            assert final[-1].run_status.status == pb.RUN_STATUS_SUCCESS
            assert a.run_row(run_id).gateway == name
            assert {o.ib_client_id for o in a.orders(run_id)} == {client_id}
    ids_by_client: dict[int, list[int]] = defaultdict(list)
    for name in ("a", "b"):
        for run_id in run_ids[name]:
            for order in a.orders(run_id):
                ids_by_client[order.ib_client_id].append(order.ib_order_id)
    for client_id, ids in ids_by_client.items():
        assert len(ids) == len(set(ids)) == 10, (client_id, ids)
    # And IB agrees: every order reached it once, under its gateway's client id, none refused.
    received = [o for o in a.sim.received_orders() if o.order_ref.startswith((a.prefix, b.prefix))]
    assert len(received) == 20 and all(o.refused_with is None for o in received)
    assert {(o.client_id, o.order_ref.split("-")[0]) for o in received} == {(1, a.prefix), (2, b.prefix)}


def _row_state(row: object) -> dict:
    return {k: v for k, v in vars(row).items() if not k.startswith("_")}


def _eventually_true(condition: Callable[[], object], timeout: float = 10.0) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True
