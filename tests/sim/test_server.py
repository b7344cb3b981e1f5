"""Connections: handshake and versions, START_API, client ids, pacing, unknown messages, and the
requests answered at connect, over raw sockets and through an ibapi EClient."""

from __future__ import annotations

import pytest

from .clients import RawClient, market_order, stock


@pytest.fixture
def raw(sim):
    clients: list[RawClient] = []

    def connect(versions: str = "v100..157") -> RawClient:
        client = RawClient(sim.port, versions)
        clients.append(client)
        return client

    yield connect
    for client in clients:
        client.close()


@pytest.mark.parametrize("versions", ["v100..157", "v157..178", "v100..200 +PACEAPI"])
def test_answers_the_highest_common_version_then_waits_for_start_api(raw, versions):
    client = raw(versions)
    version, connection_time = client.handshake()
    assert version == "157" and connection_time.endswith(" EST")  # the default login zone, US/Eastern
    client.send([71, 2, 0, ""])
    # Had anything been sent before START_API, it would come first.
    assert client.receive() == ["15", "1", "DU1234567"]
    assert client.receive() == ["9", "1", "1"]
    assert [client.receive()[3] for _ in range(3)] == ["2104", "2106", "2158"]


def test_a_client_that_needs_a_newer_server_is_disconnected(raw):
    assert raw("v158..178").is_closed_by_peer()


def test_a_peer_that_does_not_speak_the_api_is_disconnected(sim):
    import socket

    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as peer:
        peer.sendall(b"GET / HTTP/1.1\r\n\r\n")
        assert peer.recv(100) == b""


def test_unknown_message_id_is_answered_with_an_error_and_the_connection_lives_on(raw):
    client = raw().start_api(1)
    while client.receive()[3:4] != ["2158"]:  # startup, up to the last farm notice
        pass
    client.send([4242, 1, 7])
    client.send([1, 11, 5, 0, "AAPL"])  # reqMktData: known to TWS, not simulated
    client.send([49, 1])
    unknown = client.receive_until(4)[-1]
    assert unknown[:4] == ["4", "2", "-1", "321"] and "Unknown message id" in unknown[4]
    not_simulated = client.receive_until(4)[-1]
    assert not_simulated[:4] == ["4", "2", "5", "321"]
    assert client.receive_until(49)[-1][:2] == ["49", "1"]


def test_pacing_error_100_then_disconnect_for_persistent_offenders(make_sim):
    sim = make_sim({"max_messages_per_second": 10, "pacing_violations_before_disconnect": 1})
    client = RawClient(sim.port).start_api(1)
    for _ in range(11):
        client.send([49, 1])
    received = []
    try:
        while True:
            received.append(client.receive())
    except ConnectionError:
        pass
    finally:
        client.close()
    assert sum(m[0] == "49" for m in received) == 10
    assert ["4", "2", "-1", "100", "Max rate of messages per second has been exceeded."] in received
    # The API message log has all eleven, the one refused for pacing too.
    assert [(r.client_id, r.name) for r in sim.received_requests()] == [(1, "REQ_CURRENT_TIME")] * 11


def test_pacing_tolerates_a_burst_within_the_limit(sim):
    client = RawClient(sim.port).start_api(1)
    try:
        for _ in range(50):
            client.send([49, 1])
        replies = [m for m in client.receive_until(49)]
        times = 1
        while times < 50:
            message = client.receive()
            assert message[0] == "49", message
            times += 1
        assert not any(m[:4] == ["4", "2", "-1", "100"] for m in replies)
    finally:
        client.close()


def test_second_connection_with_a_client_id_in_use_gets_326_and_is_closed(sim, ibapi_client):
    first = ibapi_client(sim.port, client_id=5)
    first.next_order_id()
    second = ibapi_client(sim.port, client_id=5)

    second.wait_named("connectionClosed")
    assert (-1, 326) in [e[1:3] for e in second.named("error")]
    assert first.isConnected()
    assert sim.connected_clients() == [5]


def test_req_ids_and_current_time(sim, ibapi_client):
    app = ibapi_client(sim.port)
    first = app.next_order_id()
    app.placeOrder(first + 3, stock(), market_order("BUY", 1, "i-1"))
    app.wait_named("commissionReport")

    app.reqIds(1)
    app.reqCurrentTime()

    assert app.wait_named("nextValidId", 2)[-1][1] == first + 4
    assert app.wait_named("currentTime")[0][1] > 1_700_000_000


def test_open_orders_all_open_orders_and_completed_orders(make_sim, ibapi_client):
    sim = make_sim({"orders": {"rest-*": {"outcome": "rest"}}})
    mine = ibapi_client(sim.port, client_id=1)
    theirs = ibapi_client(sim.port, client_id=2)
    mine.placeOrder(mine.next_order_id(), stock(), market_order("BUY", 1, "rest-mine"))
    theirs.placeOrder(theirs.next_order_id(), stock(), market_order("BUY", 1, "rest-theirs"))
    mine.placeOrder(mine.next_order_id() + 1, stock(), market_order("BUY", 1, "done-mine"))
    sim.wait_for_order("rest-theirs", status="Submitted")
    mine.wait_named("commissionReport")  # the last message of done-mine's fill
    mine.events.clear()

    mine.reqOpenOrders()
    mine.wait_named("openOrderEnd")
    assert [e[3].orderRef for e in mine.named("openOrder")] == ["rest-mine"]

    mine.events.clear()
    mine.reqAllOpenOrders()
    mine.wait_named("openOrderEnd")
    assert [e[3].orderRef for e in mine.named("openOrder")] == ["rest-mine", "rest-theirs"]

    mine.reqCompletedOrders(True)
    mine.wait_named("completedOrdersEnd")
    assert [(e[2].orderRef, e[3].status) for e in mine.named("completedOrder")] == [("done-mine", "Filled")]


def test_a_reconnecting_client_is_sent_its_working_orders(make_sim, ibapi_client):
    sim = make_sim({"orders": {"rest-*": {"outcome": "rest"}}})
    app = ibapi_client(sim.port, client_id=8)
    app.placeOrder(app.next_order_id(), stock(), market_order("BUY", 1, "rest-1"))
    sim.wait_for_order("rest-1", status="Submitted")
    app.stop()
    sim.wait_for_client(8, connected=False)

    again = ibapi_client(sim.port, client_id=8)

    again.wait_named("orderStatus")
    assert [e[3].orderRef for e in again.named("openOrder")] == ["rest-1"]
    assert again.named("orderStatus")[0][2] == "Submitted"


def test_several_accounts_and_orders_for_each(make_sim, ibapi_client):
    sim = make_sim(accounts=["DU111", "U222"])
    app = ibapi_client(sim.port)
    assert app.wait_named("managedAccounts")[0][1] == "DU111,U222"
    first = app.next_order_id()
    app.placeOrder(first, stock(), market_order("BUY", 1, "a-1", account="U222"))
    app.placeOrder(first + 1, stock(), market_order("BUY", 1, "a-2"))
    app.placeOrder(first + 2, stock(), market_order("BUY", 1, "a-3", account="DU999"))
    app.wait_named("commissionReport", 2)
    app.wait_for(lambda _: any(code == 201 for _, code, _ in app.errors()))
    assert [e[3].acctNumber for e in app.named("execDetails")] == ["U222", "DU111"]
    assert "not managed" in sim.wait_for_order("a-3", status="Inactive").reject_reason


def test_requests_pipelined_with_the_handshake_are_all_answered(sim):
    import socket

    from execgw.sim.wire import API_PREFIX, FrameReader, frame

    with socket.create_connection(("127.0.0.1", sim.port), timeout=5) as peer:
        peer.sendall(API_PREFIX + frame(["v100..157"]) + frame([71, 2, 1, ""]) + frame([49, 1]) + frame([8, 1, 1]))
        frames, seen = FrameReader(), []
        while not any(m[0] == "9" for m in seen[6:]):
            seen += frames.feed(peer.recv(65536))
    assert any(m[0] == "49" for m in seen)
