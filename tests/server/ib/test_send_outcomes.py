"""An order whose write to TWS's socket did not happen, or failed part-way, is never taken as
sent, nor as refused by IB.

ibapi hides both: its connection's `sendMsg` returns 0 when the socket closed between the
client's connected check and the write (the order silently went nowhere), and ibapi 10.x turns a
socket error into an `error(orderId, 512, ...)` callback, which reads like IB refusing the order.
These tests make exactly those two things happen inside a running gateway's ibapi client, then
follow the order end to end (gRPC → gateway → ibapi → TCP → simulator) and in the database."""

from __future__ import annotations

import threading
from typing import Any

from execgw.v1 import execution_pb2 as pb


def _ibapi_connection(live: Any) -> Any:
    session = live.gateway.gateway.engine.sessions["paper"]
    client = session._client
    assert client is not None and client.isConnected()
    return client.conn


class OwnedLock:
    """ibapi's connection lock, telling which thread holds it (sendMsg writes under it)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.owner: int | None = None

    def acquire(self, *args: Any) -> bool:
        got = self._lock.acquire(*args)
        if got:
            self.owner = threading.get_ident()
        return got

    def release(self) -> None:
        self.owner = None
        self._lock.release()

    def __enter__(self) -> bool:
        return self.acquire()

    def __exit__(self, *_: object) -> None:
        self.release()


def test_an_order_whose_socket_closed_after_the_connected_check_is_sent_once_it_can_be(start_gateway):
    live = start_gateway()
    # A first run ends only after the start-up reconciliation's requests went out: the next
    # message the gateway writes is the order below, and that is the write that finds it closed.
    warm_up, _ = live.run_to_end(live.order("warm-up", quantity=1))
    assert warm_up.status == pb.RUN_STATUS_SUCCESS
    conn = _ibapi_connection(live)
    connected = conn.isConnected
    closes = [True]  # once: the socket "closes" after ibapi's connected check, inside sendMsg
    lock = conn.lock = OwnedLock()

    def closed_inside_send_msg() -> bool:
        if lock.owner == threading.get_ident() and closes:
            closes.pop()
            return False
        return connected()

    conn.isConnected = closed_inside_send_msg
    run, _ = live.run_to_end(live.order("closed-once", quantity=3), deadline=15)
    assert not closes, "the injected close never happened: the test proves nothing"
    assert run.status == pb.RUN_STATUS_SUCCESS, run.status_reason
    [order] = live.orders(run.run_id)
    assert order.status == "FILLED" and float(order.filled_qty) == 3
    placed = [o for o in live.sim.orders() if o.order_ref == order.client_order_id]
    assert len(placed) == 1, "sent exactly once"


def test_a_socket_error_during_the_write_is_not_read_as_ibs_refusal(start_gateway, eventually):
    live = start_gateway()
    conn = _ibapi_connection(live)
    real_socket = conn.socket

    class FailingOnce:
        """The socket as ibapi sees it; the next order's write fails as a reset connection does."""

        failed = False

        def send(self, data: bytes) -> int:
            is_place_order = data[4:6] == b"3\0"  # after the length prefix: PLACE_ORDER is message 3
            if is_place_order and not FailingOnce.failed:
                FailingOnce.failed = True
                raise ConnectionResetError(104, "Connection reset by peer")
            return real_socket.send(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_socket, name)

    conn.socket = FailingOnce()
    response = live.submit(live.order("reset", quantity=2), deadline=15)
    run_id = response.run.run_id
    eventually(lambda: FailingOnce.failed, timeout=10, what="the injected socket error")

    def settled() -> bool:
        return live.orders(run_id)[0].status not in ("PENDING_SUBMIT", "SUBMITTED")

    eventually(settled, timeout=30, what="the order settled")
    [order] = live.orders(run_id)
    # Nothing reached IB: never "refused by IB"; UNKNOWN until reconciliation, which then finds
    # IB never had it. Never resent: one attempt on the wire at most.
    assert order.status != "REJECTED", order.status_reason
    assert "IB 512" not in (order.status_reason or "")
    assert [o for o in live.sim.orders() if o.order_ref == order.client_order_id] == []
    eventually(lambda: live.run_row(run_id).status != "RUNNING", timeout=40, what="the run ended")


def test_a_cancel_whose_write_fails_does_not_reject_the_order(start_gateway, eventually):
    """ibapi 10.x answers a failed cancel write with `error(orderId, 515, ...)`; 9.81 raises.
    Either way IB never refused the order: it is still working at IB and is cancelled once the
    connection is back."""
    live = start_gateway({"default": {"outcome": "rest"}})
    run_id = live.submit(live.order("resting", quantity=4), deadline=8).run.run_id
    live.sim.wait_for_order(f"{live.prefix}-resting", timeout=5)
    conn = _ibapi_connection(live)
    real_socket = conn.socket

    class FailingCancel:
        failed = False

        def send(self, data: bytes) -> int:
            if data[4:6] == b"4\0" and not FailingCancel.failed:  # CANCEL_ORDER is message 4
                FailingCancel.failed = True
                raise ConnectionResetError(104, "Connection reset by peer")
            return real_socket.send(data)

        def __getattr__(self, name: str) -> Any:
            return getattr(real_socket, name)

    conn.socket = FailingCancel()
    try:
        live.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30)
    except Exception:  # UNAVAILABLE while the connection is dropped is a fair answer
        pass
    assert FailingCancel.failed, "the injected failure never happened: the test proves nothing"
    eventually(lambda: live.run_row(run_id).status != "RUNNING", timeout=40, what="the run ended")
    [order] = live.orders(run_id)
    assert order.status == "CANCELLED", (order.status, order.status_reason)
    assert "515" not in (order.status_reason or "")
    went_through = [e.payload.get("status") for e in live.event_rows(run_id) if e.kind == "order_status"]
    assert "ORDER_STATUS_REJECTED" not in went_through, f"taken for refused on the way: {went_through}"
    assert [o.status for o in live.sim.orders() if o.order_ref == order.client_order_id] == ["Cancelled"]
