"""The simulator as ib_async 2.1 sees it: connectAsync completes its startup requests, orders fill
through Trade objects, reqExecutions recovers fills after a reconnect, faults reach its events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from ib_async import IB, ExecutionFilter, MarketOrder, Stock

from execgw.sim import Scenario, Simulator

WAIT = 5.0


@pytest.fixture(autouse=True)
def no_decoding_errors(caplog):
    """ib_async logs (rather than raises) a message it cannot decode: any such log fails the test."""
    caplog.set_level(logging.ERROR, logger="ib_async.Decoder")
    yield
    assert not [r for r in caplog.records if r.name == "ib_async.Decoder"], "ib_async could not decode a message"


async def until(condition: Callable[[], Any], timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


def run(test: Callable[[Simulator], Awaitable[None]], scenario: dict[str, Any] | None = None) -> None:
    """Run one test on a fresh loop with a simulator on a free port, stopped afterwards."""

    async def main() -> None:
        sim = Simulator(scenario=Scenario.from_dict(scenario or {}), seed=2)
        await sim.start()
        try:
            await test(sim)
        finally:
            await sim.stop()

    asyncio.run(main())


async def connect(sim: Simulator, client_id: int = 1) -> IB:
    ib = IB()
    # raiseSyncErrors: a startup request the simulator left unanswered would raise here
    await ib.connectAsync("127.0.0.1", sim.port, clientId=client_id, timeout=WAIT, raiseSyncErrors=True)
    return ib


def test_connect_completes_startup_without_timeouts():
    async def test(sim: Simulator) -> None:
        started = time.monotonic()
        ib = await connect(sim)
        try:
            assert time.monotonic() - started < 2.0
            assert ib.isConnected()
            assert ib.client.serverVersion() == 157
            assert ib.managedAccounts() == ["DU1234567"]
            assert ib.client.getReqId() >= 1
            assert (await ib.reqCurrentTimeAsync()).year >= 2024
        finally:
            ib.disconnect()

    run(test)


def test_market_order_fills_with_order_ref_and_commission():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim, client_id=7)
        try:
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 100, orderRef="ia-1"))
            await until(lambda: trade.isDone() and trade.fills and trade.fills[0].commissionReport.execId)
            assert trade.orderStatus.status == "Filled"
            assert trade.orderStatus.filled == 100
            [fill] = trade.fills
            assert fill.execution.orderRef == "ia-1"
            assert fill.execution.clientId == 7
            assert fill.execution.side == "BOT"
            assert fill.commissionReport.commission == 1.0
            [truth] = sim.executions()
            assert (truth.exec_id, truth.perm_id, truth.price) == (
                fill.execution.execId, fill.execution.permId, fill.execution.price)
        finally:
            ib.disconnect()

    run(test)


def test_partial_fills():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim)
        try:
            trade = ib.placeOrder(Stock("IBM", "SMART", "USD"), MarketOrder("SELL", 9, orderRef="ia-p"))
            await until(lambda: trade.isDone() and len(trade.fills) == 3)
            assert [f.execution.shares for f in trade.fills] == [3, 3, 3]
            assert [f.execution.cumQty for f in trade.fills] == [3, 6, 9]
            assert {f.execution.side for f in trade.fills} == {"SLD"}
        finally:
            ib.disconnect()

    run(test, {"orders": {"ia-p": {"fills": 3, "fill_interval": 0.02}}})


def test_rejection():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim)
        errors: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, *_: errors.append((req_id, code))
        try:
            trade = ib.placeOrder(Stock("GME", "SMART", "USD"), MarketOrder("BUY", 1, orderRef="ia-r"))
            await until(lambda: trade.orderStatus.status == "Inactive")
            assert (trade.order.orderId, 201) in errors
            assert not trade.fills
        finally:
            ib.disconnect()

    run(test, {"symbols": {"GME": {"outcome": "reject"}}})


def test_cancel_of_a_resting_order():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim)
        try:
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 1, orderRef="ia-c"))
            await until(lambda: trade.orderStatus.status == "Submitted")
            ib.cancelOrder(trade.order)
            await until(lambda: trade.orderStatus.status == "Cancelled")
            assert (await sim.wait_for_order("ia-c")).status == "Cancelled"
        finally:
            ib.disconnect()

    run(test, {"orders": {"ia-c": {"outcome": "rest"}}})


def test_req_executions_after_reconnect_returns_the_days_fills():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim)
        trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 5, orderRef="ia-x1"))
        await until(trade.isDone)
        ib.disconnect()
        await sim.wait_for_client(1, connected=False)
        # filled while nobody listens: kept for reqExecutions
        sim.release_order("ia-x2")
        await sim.wait_for_order("ia-x2", status="Filled")

        again = await connect(sim)
        try:
            fills = await again.reqExecutionsAsync(ExecutionFilter(clientId=1))
            assert sorted(f.execution.orderRef for f in fills) == ["ia-x1", "ia-x2"]
            await until(lambda: all(f.commissionReport.execId for f in again.fills()))
            assert {f.execution.execId for f in fills} == {e.exec_id for e in sim.executions()}
            only_msft = await again.reqExecutionsAsync(ExecutionFilter(symbol="MSFT"))
            assert only_msft == []
        finally:
            again.disconnect()

    async def place_resting(sim: Simulator) -> None:
        ib = await connect(sim)
        ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 2, orderRef="ia-x2"))
        await sim.wait_for_order("ia-x2", status="Submitted")
        ib.disconnect()
        await sim.wait_for_client(1, connected=False)
        await test(sim)

    run(place_resting, {"orders": {"ia-x2": {"outcome": "rest"}}})


def test_correction_is_a_second_fill_with_the_next_revision():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim)
        try:
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), MarketOrder("BUY", 4, orderRef="ia-k"))
            await until(lambda: len(trade.fills) == 2)
            original, correction = (f.execution for f in trade.fills)
            assert correction.execId == original.execId[:-2] + "02"
            assert correction.price == pytest.approx(original.price - 0.1)
        finally:
            ib.disconnect()

    run(test, {"orders": {"ia-k": {"correction": -0.1}}})


def test_duplicate_order_id_is_error_103():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim)
        errors: list[tuple[int, int]] = []
        ib.errorEvent += lambda req_id, code, *_: errors.append((req_id, code))
        try:
            order = MarketOrder("BUY", 1, orderRef="ia-d1")
            trade = ib.placeOrder(Stock("AAPL", "SMART", "USD"), order)
            await until(trade.isDone)
            reused = MarketOrder("BUY", 1, orderRef="ia-d2", orderId=order.orderId)
            ib.client.placeOrder(order.orderId, Stock("AAPL", "SMART", "USD"), reused)
            await until(lambda: (order.orderId, 103) in errors)
        finally:
            ib.disconnect()

    run(test)


def test_client_id_in_use_is_error_326_and_the_socket_closes():
    async def test(sim: Simulator) -> None:
        first = await connect(sim, client_id=9)
        second = IB()
        errors: list[int] = []
        second.errorEvent += lambda req_id, code, *_: errors.append(code)
        try:
            with pytest.raises((ConnectionError, TimeoutError)):
                await second.connectAsync("127.0.0.1", sim.port, clientId=9, timeout=3)
            assert 326 in errors
            assert not second.isConnected()
            assert first.isConnected() and sim.connected_clients() == [9]
        finally:
            first.disconnect()
            second.disconnect()

    run(test)


def test_dropped_connection_reaches_the_client():
    async def test(sim: Simulator) -> None:
        ib = await connect(sim)
        dropped = asyncio.Event()
        ib.disconnectedEvent += dropped.set
        try:
            assert sim.drop_connections() == 1
            await asyncio.wait_for(dropped.wait(), WAIT)
            assert not ib.isConnected()
        finally:
            ib.disconnect()

    run(test)
