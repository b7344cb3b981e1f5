"""The gateway's event loop: uvloop's where it is installed (Linux and macOS), asyncio's otherwise.

The loop carries every gRPC message, every IB report handed over from ibapi's thread and every
commit's wake-up. uvloop (libuv, in Cython) does that loop's own work in less CPU than asyncio's
pure-Python selector loop: at a 1,110 executions/s flood it took the loop thread from about 350 to
310 µs of CPU per execution, and the watcher's lag from 0.06-0.4 s to 0.015 s (README,
"Measured"). `EXECGW_EVENT_LOOP=asyncio` keeps asyncio's loop (to tell the two apart should a
problem ever point at the loop)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

CHOICE_ENV = "EXECGW_EVENT_LOOP"


def new_event_loop() -> asyncio.AbstractEventLoop:
    if os.environ.get(CHOICE_ENV, "").strip().lower() != "asyncio":
        try:
            import uvloop
        except ImportError:  # Windows, or a platform without its wheel: asyncio's loop does the same job
            pass
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run(main: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run`, on the loop `new_event_loop` chooses."""
    with asyncio.Runner(loop_factory=new_event_loop) as runner:
        return runner.run(main)
