"""Never lose a fill when IB misbehaves: dropped sockets, Gateway restarts with a rolled-back
nextValidId, connectivity loss (1100 → 1101 / 1102). Each test ends by checking that the
database holds exactly the executions the simulator made, and a watcher saw every event once."""

from __future__ import annotations

import dataclasses
import time

import grpc
import pytest
from sqlalchemy import Engine
from sqlalchemy import event as sa_event

from execgw.v1 import execution_pb2 as pb


def assert_nothing_lost(live, run_id: str) -> None:
    """DB == simulator truth (no missing, no duplicate fill), quantities right, events gap-free."""
    orders = live.orders(run_id)
    refs = {o.client_order_id for o in orders}
    truth = [e for e in live.sim.executions() if e.order_ref in refs]
    fills = live.fills(run_id)
    assert sorted(f.exec_id for f in fills) == sorted(e.exec_id for e in truth)
    for order in orders:
        executed = sum(e.shares for e in truth if e.order_ref == order.client_order_id and not _superseded(e, truth))
        assert order.filled_qty == pytest.approx(executed)
    events = live.watch(run_id)
    assert [e.sequence for e in events] == [row.sequence for row in live.event_rows(run_id)]
    assert [e.sequence for e in events] == list(range(1, len(events) + 1))


def _superseded(execution, truth) -> bool:
    return any(e.corrects == execution.exec_id for e in truth)


def test_fills_made_while_the_socket_was_down_are_recovered(start_gateway, eventually):
    live = start_gateway({"default": {"fills": 10, "fill_interval": 0.15}})
    run_id = live.submit(live.order("burst", quantity=100)).run.run_id
    eventually(lambda: len(live.fills(run_id)) >= 2, what="first fills stored")
    assert live.sim.drop_connections() == 1
    eventually(lambda: live.run_row(run_id).status == "SUCCESS", timeout=30, what="run finished")
    assert len(live.fills(run_id)) == 10
    assert_nothing_lost(live, run_id)


def test_a_gateway_restart_with_a_lower_next_valid_id_reuses_no_order_id(start_gateway, eventually):
    live = start_gateway({"default": {"fills": 4, "fill_interval": 0.3}})
    first = live.submit(live.order("a"), live.order("b")).run
    eventually(lambda: len(live.fills(first.run_id)) >= 1, what="a first fill")
    # Both orders at IB before it restarts: one still in flight as TWS goes away is another
    # test's case (it never reaches IB).
    live.sim.wait_for_order(f"{live.prefix}-b", timeout=5)
    live.sim.refuse_connections(1.5, next_valid_id=1)
    eventually(lambda: not live.gateway.gateway.engine.mode_ready("paper"), what="gateway noticed the outage")
    eventually(lambda: live.gateway.gateway.engine.mode_ready("paper"), timeout=30, what="gateway reconnected")
    second = live.submit(live.order("c")).run
    assert second.orders[0].ib_order_id > max(o.ib_order_id for o in first.orders)
    for run_id in (first.run_id, second.run_id):
        eventually(lambda run_id=run_id: live.run_row(run_id).status == "SUCCESS", timeout=30, what="runs finished")
        assert_nothing_lost(live, run_id)
    sent_ids = [o.order_id for o in live.sim.orders()]
    assert len(sent_ids) == len(set(sent_ids)) == 3


def test_an_order_written_as_tws_went_away_is_concluded_at_the_reconnect_not_the_deadline(start_gateway, eventually):
    """placeOrder left whole, but TWS closed the socket with it unread: no error, no status, and
    no record at IB after the reconnect. The gateway concludes it never reached IB as soon as the
    reconnect's reconciliation says so, cancels it at IB to be sure, and never sends it again."""
    live = start_gateway({"default": {}})  # its TWS zone one where it is noon: b is of IB's day
    live.sim.drop_before_order(f"{live.prefix}-b")
    run_id = live.submit(live.order("a"), live.order("b"), deadline=120).run.run_id

    eventually(lambda: live.run_row(run_id).status != "RUNNING", timeout=20, what="run finished")
    run = live.run_row(run_id)
    assert run.status == "PARTIAL"
    assert (run.finished_at - run.created_at).total_seconds() < 20  # not held to the 120 s deadline
    a, b = sorted(live.orders(run_id), key=lambda o: o.client_order_id)
    assert (a.status, b.status) == ("FILLED", "CANCELLED")
    assert "never reached IB" in b.status_reason
    assert b.client_order_id in run.status_reason
    assert_nothing_lost(live, run_id)
    # The gateway trades on over the new socket, and b is never sent again, under any id.
    after = live.submit(live.order("c")).run
    eventually(lambda: live.run_row(after.run_id).status == "SUCCESS", what="the next run filled")
    assert after.orders[0].ib_order_id > b.ib_order_id
    sent = [r for r in live.sim.received_orders() if r.order_ref.startswith(live.prefix)]
    assert [(r.order_ref, r.order_id) for r in sent] == [
        (a.client_order_id, a.ib_order_id), (f"{live.prefix}-c", after.orders[0].ib_order_id)]


@pytest.mark.parametrize("restored", [1101, 1102])
def test_connectivity_loss_then_restore_loses_no_fill(start_gateway, restored, eventually):
    live = start_gateway({"default": {"fill_delay": 0.8}})
    run_id = live.submit(live.order("x"), live.order("y")).run.run_id
    live.sim.wait_for_order(f"{live.prefix}-y", timeout=5)
    live.sim.send_error(1100)
    eventually(lambda: not live.gateway.gateway.engine.mode_ready("paper"), what="1100 seen")
    with pytest.raises(grpc.RpcError) as caught:
        live.submit(live.order("during"))
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    live.sim.wait_for_order(f"{live.prefix}-y", timeout=5, status="Filled")  # filled during the outage
    live.sim.send_error(restored)  # 1101: TWS discards what it held; only reconciliation recovers it
    eventually(lambda: live.run_row(run_id).status == "SUCCESS", timeout=20, what="run finished")
    assert_nothing_lost(live, run_id)


def test_a_watcher_cut_again_and_again_sees_every_event_once(start_gateway):
    live = start_gateway({"default": {"fills": 6, "fill_interval": 0.1}})
    run_id = live.submit(live.order("a"), live.order("b", "MSFT")).run.run_id
    seen: list[pb.RunEvent] = []
    finished = False
    while not finished:
        call = live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=seen[-1].sequence if seen else 0),
                                  timeout=20)
        finished = True
        for message in call:
            if message.HasField("event"):
                seen.append(message.event)
                call.cancel()  # cut after every single event
                finished = False
                break
    stored = live.event_rows(run_id)
    assert [e.sequence for e in seen] == [row.sequence for row in stored]
    assert seen[-1].run_status.final


def test_a_day_slower_to_store_than_the_reconcile_timeout_is_asked_for_once(start_gateway, test_timings, eventually):
    """The executions IB made while the gateway was away take longer to store than
    reconcile_timeout (a slow database; the decoder waits for the writer), so IB's end marker is
    read after that time. IB was never quiet: the reconciliation succeeds on its one request,
    and the day is not asked for again."""
    timings = dataclasses.replace(test_timings, reconcile_timeout=0.5, max_decoded_reports=2)
    live = start_gateway({"default": {"fills": 30, "fill_delay": 0.5}}, timings=timings)
    run_id = live.submit(live.order("away", quantity=30), deadline=120).run.run_id
    live.sim.wait_for_order(f"{live.prefix}-away", timeout=5)
    reconciler = live.gateway.gateway.engine.reconciler
    eventually(lambda: reconciler.records.last.get(("paper", "full")), what="the connect's reconciliation done")
    asked_before, failed_before = reconciler.asked[("paper", "full")], reconciler.failed[("paper", "full")]

    def slow_fill_insert(_conn, _cursor, statement: str, *_args: object) -> None:
        if statement.startswith("INSERT INTO trade_fills"):
            time.sleep(0.1)

    sa_event.listen(Engine, "before_cursor_execute", slow_fill_insert)
    try:
        live.sim.refuse_connections(2.0)  # IB fills the order meanwhile
        eventually(lambda: live.run_row(run_id).status == "SUCCESS", timeout=60, what="run finished")
    finally:
        sa_event.remove(Engine, "before_cursor_execute", slow_fill_insert)
    assert_nothing_lost(live, run_id)
    assert len(live.fills(run_id)) == 30
    assert reconciler.asked[("paper", "full")] - asked_before == 1, "the reconnect's reconciliation asked IB once"
    assert reconciler.failed[("paper", "full")] == failed_before
    reconciled = reconciler.records.last[("paper", "full")]
    assert reconciled.succeeded and reconciled.executions_found == reconciled.executions_stored == 30
