"""ibapi's thread hands its events to the loop through `LoopHandoff`: in the order posted, one
wake-up of the loop per burst, a failing item costing only itself, nothing raised into ibapi's
thread once the loop is closed."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from execgw.server.ib.handoff import LoopHandoff


def test_items_posted_from_another_thread_arrive_in_order():
    loop = asyncio.new_event_loop()
    seen: list[int] = []
    done = asyncio.Event()

    def take(item: int) -> None:
        seen.append(item)
        if item == 9_999:
            done.set()

    handoff = LoopHandoff(loop, take)

    def produce() -> None:
        for item in range(10_000):
            handoff.post(item)

    async def main() -> None:
        thread = threading.Thread(target=produce)
        thread.start()
        await asyncio.wait_for(done.wait(), 10)
        thread.join()

    try:
        loop.run_until_complete(main())
    finally:
        loop.close()
    assert seen == list(range(10_000))


def test_a_burst_wakes_the_loop_once(monkeypatch: pytest.MonkeyPatch):
    loop = asyncio.new_event_loop()
    wakes: list[Any] = []
    original = loop.call_soon_threadsafe

    def counted(callback: Any, *args: Any) -> Any:
        wakes.append(callback)
        return original(callback, *args)

    monkeypatch.setattr(loop, "call_soon_threadsafe", counted)
    seen: list[int] = []
    handoff = LoopHandoff(loop, seen.append)
    try:
        for item in range(500):  # the loop is not running: all of it is one burst
            handoff.post(item)
        assert len(wakes) == 1
        loop.run_until_complete(asyncio.sleep(0))
        assert seen == list(range(500))
        handoff.post(500)  # after a drain, the next item wakes the loop again
        assert len(wakes) == 2
        loop.run_until_complete(asyncio.sleep(0))
        assert seen == list(range(501))
    finally:
        loop.close()


def test_a_failing_item_is_reported_and_the_ones_behind_it_still_arrive():
    loop = asyncio.new_event_loop()
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: reported.append(context))
    seen: list[int] = []

    def take(item: int) -> None:
        if item == 1:
            raise ValueError("a bug")
        seen.append(item)

    handoff = LoopHandoff(loop, take)
    try:
        for item in range(3):
            handoff.post(item)
        loop.run_until_complete(asyncio.sleep(0))
    finally:
        loop.close()
    assert seen == [0, 2]
    (context,) = reported
    assert isinstance(context["exception"], ValueError)


def test_an_item_posted_after_the_loop_closed_is_dropped_quietly():
    """ibapi's thread may still be decoding a backlog when the gateway stops and its loop closes."""
    loop = asyncio.new_event_loop()
    seen: list[int] = []
    handoff = LoopHandoff(loop, seen.append)
    handoff.post(1)
    loop.run_until_complete(asyncio.sleep(0))
    loop.close()
    handoff.post(2)  # no RuntimeError into ibapi's reader thread
    assert seen == [1]
