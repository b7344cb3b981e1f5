"""Flood mode: a market order filled in thousands of back-to-back executions, all delivered,
all recorded, and other clients still served meanwhile."""

from __future__ import annotations

import asyncio

from execgw.sim import Simulator
from execgw.sim.flood import flood_scenario, read_flood
from execgw.sim.wire import API_PREFIX, FrameReader, frame


def test_every_execution_of_a_flood_arrives_and_is_recorded():
    async def main() -> None:
        sim = Simulator(scenario=flood_scenario(5000))
        port = await sim.start()
        try:
            result = await read_flood("127.0.0.1", port, 5000, timeout=60)
            assert result.executions == 5000
            assert result.messages >= 3 * 5000  # execDetails, orderStatus, commissionReport each
            executions = sim.executions()
            assert len(executions) == 5000 and len({e.exec_id for e in executions}) == 5000
            assert {e.shares for e in executions} == {1.0}
            assert executions[-1].cum_qty == 5000
            order = await sim.wait_for_order("flood", status="Filled")
            assert order.filled == 5000
        finally:
            await sim.stop()

    asyncio.run(main())


def test_other_clients_are_served_during_a_flood():
    async def main() -> None:
        sim = Simulator(scenario=flood_scenario(30000))
        port = await sim.start()
        try:
            flood = asyncio.create_task(read_flood("127.0.0.1", port, 30000, timeout=60))
            await sim.wait_for_order("flood")
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            frames = FrameReader()
            writer.write(API_PREFIX + frame(["v100..157"]) + frame([71, 2, 5, ""]) + frame([49, 1]))
            answered = False
            while not answered:
                answered = any(m[0] == "49" for m in frames.feed(await reader.read(65536)))
            assert not flood.done(), "the flood ended before the other client was answered"
            writer.close()
            assert (await flood).executions == 30000
        finally:
            await sim.stop()

    asyncio.run(main())
