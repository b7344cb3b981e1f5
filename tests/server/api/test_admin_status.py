"""AdminService end to end: GetStatus against a known state, and an operator settling the order
IB's reports can no longer account for (created before IB's day began), after a restart.

gRPC client → gateway → ibapi → TCP → simulator, the database checked; on SQLite and MariaDB."""

from __future__ import annotations

import importlib.metadata
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta

import grpc
import pytest
from sqlalchemy import select

from execgw.client.errors import translate
from execgw.server.api.callers import Permission, add_caller
from execgw.server.db.engine import display_url
from execgw.server.db.models import TradeOrder, TradeRun
from execgw.v1 import admin_pb2 as admin
from execgw.v1 import admin_pb2_grpc as admin_grpc
from execgw.v1 import execution_pb2 as pb

# Orders named *-old wait for their acknowledgement at IB (PendingSubmit: in no report of IB's);
# *-late fill a few seconds after IB acknowledged them; the others fill at once.
SCENARIO = {"orders": {"*-old": {"ack_delay": 600}, "*-late": {"fill_delay": 3}}}


def status_of(live) -> admin.GetStatusResponse:
    return admin_grpc.AdminServiceStub(live.channel).GetStatus(admin.GetStatusRequest(), timeout=10)


def order_row(live, client_order_id: str) -> TradeOrder:
    with live.session() as s:
        return s.scalars(select(TradeOrder).where(TradeOrder.client_order_id == client_order_id)).one()


def stamp(when: datetime):
    from google.protobuf.timestamp_pb2 import Timestamp

    result = Timestamp()
    result.FromDatetime(when)
    return result


def test_status_names_the_endpoint_the_database_and_an_open_run(start_gateway, database_url, eventually):
    live = start_gateway(SCENARIO)
    eventually(lambda: status_of(live).endpoints[0].HasField("last_full_reconciliation"),
               what="the reconciliation on connect recorded")
    started = datetime.now(UTC)
    run = live.submit(live.order("old"), live.order("now"), deadline=300).run
    live.sim.wait_for_order(f"{live.prefix}-old", timeout=10)
    eventually(lambda: order_row(live, f"{live.prefix}-now").status == "FILLED", what="'now' filled")
    quick, _ = live.run_to_end(live.order("quick", symbol="MSFT"))  # ends with a reconciliation of MSFT
    assert quick.status == pb.RUN_STATUS_SUCCESS
    ib_ids = sorted(o.ib_order_id for o in run.orders)

    status = status_of(live)
    assert status.gateway_name == "execgw" and status.version == importlib.metadata.version("execgw")
    assert status.uptime.ToTimedelta() > timedelta(0)
    (paper,) = status.endpoints
    assert paper.mode == pb.TRADING_MODE_PAPER and paper.address == f"127.0.0.1:{live.sim.port}"
    assert paper.client_id == 1 and paper.connected and paper.taking_orders and paper.not_taking_orders_reason == ""
    assert list(paper.accounts) == live.sim.simulator.accounts
    assert paper.next_order_id == max(ib_ids[-1], *(o.ib_order_id for o in quick.orders)) + 1, "the next id"
    assert paper.pacing.messages_per_second == 45 and paper.pacing.turns >= 2
    assert paper.connections_made == 1
    first = paper.last_full_reconciliation
    assert first.succeeded and first.failure == "" and first.executions_found == 0
    assert first.finished_at.ToDatetime(UTC) >= first.started_at.ToDatetime(UTC)
    run_end = paper.last_run_end_reconciliation
    assert run_end.succeeded and run_end.executions_found == 1, "IB's executions of the day in MSFT: quick's"
    assert run_end.executions_stored == 0, "stored as it came, before the run's end asked IB"
    assert status.database.url == display_url(database_url) and status.database.taking_writes
    assert status.database.accepting_runs and status.database.reports_held == 0
    (open_run,) = status.open_runs
    assert open_run.run_id == run.run_id and open_run.mode == pb.TRADING_MODE_PAPER
    assert open_run.orders == 2 and open_run.open_orders == 1  # "now" filled at once, "old" waits at IB
    deadline = open_run.deadline.ToDatetime(UTC)
    assert started + timedelta(seconds=290) < deadline < datetime.now(UTC) + timedelta(seconds=301)
    assert status.lists_unavailable == "" and list(status.unknown_orders) == []


def test_an_operator_settles_an_order_from_before_ibs_day_and_a_later_fill_still_corrects_it(
    start_gateway, eventually
):
    # Outside market hours: "late" waits at IB for the open; "old" is never even acknowledged.
    first = start_gateway({"market_open": False, "orders": {"*-old": {"ack_delay": 600}}})
    prefix = first.prefix
    old, late = f"{prefix}-old", f"{prefix}-late"
    run = first.submit(first.order("old"), first.order("late"), deadline=300).run
    run_id = run.run_id
    first.sim.wait_for_order(old, timeout=10)
    first.sim.wait_for_order(late, timeout=10, status="PreSubmitted")
    eventually(lambda: order_row(first, late).status == "SUBMITTED", what="IB's acknowledgement of 'late' stored")
    first.gateway.stop()

    # "old" was placed yesterday as far as our books go; IB's day rolls over, and with it the
    # day's orders expire and drop out of what IB reports. Then the market opens and "late"
    # fills while no gateway runs: only reqExecutions can tell.
    with first.session() as s, s.begin():
        row = s.scalars(select(TradeOrder).where(TradeOrder.client_order_id == old)).one()
        row.created_at = row.created_at - timedelta(days=1)
    first.sim.new_day()
    first.sim.open_market()
    eventually(lambda: any(e.order_ref == late for e in first.sim.executions()), what="IB filling 'late'")
    restarted_at = datetime.now(UTC)
    live = start_gateway(sim=first.sim)

    eventually(lambda: order_row(live, late).status == "FILLED", what="the fill made while down, recovered")
    eventually(lambda: status_of(live).endpoints[0].HasField("last_full_reconciliation"),
               what="the reconciliation on connect recorded")
    status = status_of(live)
    reconciled = status.endpoints[0].last_full_reconciliation
    assert reconciled.started_at.ToDatetime(UTC) >= restarted_at - timedelta(seconds=1)
    assert reconciled.succeeded and reconciled.executions_found == 1, "IB's executions of its day: late's"
    assert reconciled.executions_stored == 1, "late's execution was new to our books"
    assert reconciled.orders_settled == 0, "old is before IB's day: not IB's silence to settle"
    assert order_row(live, old).status == "UNKNOWN"
    (unknown,) = status.unknown_orders
    row = order_row(live, old)
    assert (unknown.client_order_id, unknown.run_id, unknown.mode) == (old, run_id, pb.TRADING_MODE_PAPER)
    assert unknown.ib_order_id == row.ib_order_id and unknown.created_at == stamp(row.created_at)
    assert "before IB's current day began" in unknown.reason and "settle it" in unknown.reason
    assert (unknown.symbol, unknown.side, unknown.quantity) == ("AAPL", pb.ORDER_SIDE_BUY, 10)
    assert [r.run_id for r in status.open_runs] == [run_id]

    last_sequence = live.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10).run.last_sequence
    seen: list[pb.RunEvent] = []
    watcher = threading.Thread(target=lambda: seen.extend(live.watch(run_id, after=last_sequence, timeout=90)),
                               daemon=True)
    watcher.start()
    time.sleep(0.3)  # the watcher is live before the change (it would replay it otherwise, which proves less)

    settled = admin_grpc.AdminServiceStub(live.channel).SettleOrder(
        admin.SettleOrderRequest(client_order_id=old, note="not in TWS order history for 2026-11-27"), timeout=10)
    assert settled.status == pb.ORDER_STATUS_CANCELLED and settled.run_id == run_id and settled.run_ends
    assert "'local'" in settled.status_reason and "not in TWS order history" in settled.status_reason

    watcher.join(30)
    assert not watcher.is_alive(), "the run did not end after its last open order was settled"
    changes = [e.order_status for e in seen if e.HasField("order_status")]
    assert [(c.client_order_id, c.previous_status, c.status) for c in changes] == [
        (old, pb.ORDER_STATUS_UNKNOWN, pb.ORDER_STATUS_CANCELLED)]
    assert "not in TWS order history" in changes[0].reason
    assert seen[-1].run_status.final and seen[-1].run_status.status == pb.RUN_STATUS_PARTIAL
    row = order_row(live, old)
    assert row.status == "CANCELLED" and row.status_reason == settled.status_reason
    assert live.run_row(run_id).status == "PARTIAL"
    after = status_of(live)
    assert list(after.unknown_orders) == [] and list(after.open_runs) == []
    cancels = {r.order_id for r in live.sim.received_requests() if r.name == "CANCEL_ORDER"}
    assert row.ib_order_id not in cancels, "settling sent something to IB"

    # IB had the order after all (its orderRef, order id and our client id; a permId we never
    # learnt): its fill is recorded and corrects the order and the run.
    live.sim.add_foreign_order(old, client_id=1, order_id=row.ib_order_id)
    eventually(lambda: live.run_row(run_id).status == "SUCCESS", what="the late fill correcting the run")
    row = order_row(live, old)
    assert row.status == "FILLED" and row.filled_qty == 10
    at_ib = [e.exec_id for e in live.sim.executions() if e.order_ref == old]
    assert len(at_ib) == 1 and at_ib[0] in {f.exec_id for f in live.fills(run_id)}
    replay = live.watch(run_id, after=seen[-1].sequence)
    assert any(e.HasField("fill") and e.fill.client_order_id == old for e in replay)
    assert [e.run_status.status for e in replay if e.HasField("run_status")] == [pb.RUN_STATUS_SUCCESS]



def insert_unknown_order(live, name: str, *, account: str | None, endpoint: str | None = None,
                         status: str = "UNKNOWN", mode: str = "paper") -> tuple[str, str]:
    """A RUNNING run with one order in `status`, written straight to the database as a previous
    process (or another gateway) left it; the writer has never seen it. Created yesterday: a
    reconciliation leaves such an UNKNOWN order as it is. Returns (run id, client_order_id)."""
    run_id, client_order_id = str(uuid.uuid4()), f"{live.prefix}-{name}"
    now = datetime.now(UTC).replace(tzinfo=None) - timedelta(days=1)
    with live.session() as s, s.begin():
        s.add(TradeRun(id=run_id, mode=mode, account=account, status="RUNNING", status_reason="submitted",
                       last_sequence=0, created_at=now, updated_at=now, deadline_at=now + timedelta(minutes=5)))
        s.flush()
        s.add(TradeOrder(run_id=run_id, client_order_id=client_order_id, symbol="MSFT", sec_type="STK", exchange="SMART",
                         currency="USD", side="SELL", quantity=3, order_type="MKT", account=account, status=status,
                         filled_qty=0, ib_endpoint=endpoint or f"127.0.0.1:{live.sim.port}", ib_client_id=1,
                         ib_order_id=900_000 + len(name), created_at=now, updated_at=now,
                         status_reason="check it in TWS, then settle it"))
    return run_id, client_order_id


def test_settling_is_refused_for_what_it_cannot_settle(start_gateway, tmp_path, eventually):
    callers = tmp_path / "callers.toml"
    tokens = {
        "ops": add_caller(callers, "ops", [Permission.READ, Permission.PAPER, Permission.ADMIN]),
        "reader": add_caller(callers, "reader", [Permission.READ, Permission.PAPER]),
        "live-ops": add_caller(callers, "live-ops", [Permission.READ, Permission.LIVE, Permission.ADMIN]),
        "du2-ops": add_caller(callers, "du2-ops", [Permission.READ, Permission.PAPER, Permission.ADMIN],
                              accounts=["DU2"]),
    }
    live = start_gateway(callers_file=callers)
    admin_stub = admin_grpc.AdminServiceStub(live.channel)
    ops = (("authorization", f"Bearer {tokens['ops']}"),)
    eventually(lambda: admin_stub.GetStatus(admin.GetStatusRequest(), timeout=10, metadata=ops)
               .endpoints[0].HasField("last_full_reconciliation"), what="the reconciliation on connect done")

    def settle(who: str, client_order_id: str, note: str = "checked TWS: not there") -> admin.SettleOrderResponse:
        return admin_stub.SettleOrder(admin.SettleOrderRequest(client_order_id=client_order_id, note=note),
                                      timeout=10, metadata=(("authorization", f"Bearer {tokens[who]}"),))

    def refused(who: str, client_order_id: str, note: str = "checked TWS: not there") -> grpc.RpcError:
        with pytest.raises(grpc.RpcError) as caught:
            settle(who, client_order_id, note)
        return caught.value

    _, unknown = insert_unknown_order(live, "unknown", account="DU1")
    _, filled = insert_unknown_order(live, "filled", account="DU1", status="FILLED")
    _, elsewhere = insert_unknown_order(live, "elsewhere", account="DU1", endpoint="10.0.0.9:4002")
    _, live_order = insert_unknown_order(live, "live-one", account="U7", mode="live")

    error = refused("reader", unknown)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "'admin'" in error.details()
    error = refused("live-ops", unknown)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "'paper'" in error.details()
    error = refused("ops", live_order)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "'live'" in error.details()
    error = refused("ops", f"{live.prefix}-missing")
    assert error.code() == grpc.StatusCode.NOT_FOUND and "client_order_id" in error.details()
    error = refused("du2-ops", unknown)  # another account's order does not exist for it
    assert error.code() == grpc.StatusCode.NOT_FOUND and error.details() == refused("ops", "nope").details().replace(
        "'nope'", repr(unknown))
    error = refused("ops", unknown, note="   ")
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [field for field, _ in translate(error).violations] == ["note"]
    error = refused("ops", filled)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "is FILLED, not UNKNOWN" in error.details()
    error = refused("ops", elsewhere)
    assert error.code() == grpc.StatusCode.FAILED_PRECONDITION and "10.0.0.9:4002" in error.details()
    assert "settle it on the gateway that placed it" in error.details()
    with live.session() as s:
        statuses = dict(s.execute(select(TradeOrder.client_order_id, TradeOrder.status)
                                  .where(TradeOrder.client_order_id.like(f"{live.prefix}-%"))).all())
    assert statuses == {unknown: "UNKNOWN", filled: "FILLED", elsewhere: "UNKNOWN", live_order: "UNKNOWN"}

    # Status: only this gateway's endpoints, and only what the caller's accounts may see.
    def unknown_seen_by(who: str) -> list[str]:
        status = admin_stub.GetStatus(admin.GetStatusRequest(), timeout=10,
                                      metadata=(("authorization", f"Bearer {tokens[who]}"),))
        return [o.client_order_id for o in status.unknown_orders]

    assert unknown_seen_by("ops") == [unknown, live_order]
    assert unknown_seen_by("du2-ops") == []
    with pytest.raises(grpc.RpcError) as no_token:
        admin_stub.GetStatus(admin.GetStatusRequest(), timeout=10)
    assert no_token.value.code() == grpc.StatusCode.UNAUTHENTICATED

    settled = settle("ops", unknown)
    assert settled.status == pb.ORDER_STATUS_CANCELLED and "'ops'" in settled.status_reason and settled.run_ends
    assert unknown_seen_by("ops") == [live_order]
    assert refused("ops", unknown).code() == grpc.StatusCode.FAILED_PRECONDITION, "settled once only"
