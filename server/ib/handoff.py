"""Handing what ibapi's thread decodes to the event loop: one wake-up per burst, not per callback.

`loop.call_soon_threadsafe` writes a byte to the loop's self-pipe on every call. For a replay
of the day's executions (an execDetails and a commissionReport each) that is a system call, a
release of the GIL to the writer thread and a wait to get it back per callback: half of ibapi's
thread's time at 20,000 executions, more than ibapi's decoding itself.

`LoopHandoff.post` appends to a list under a lock (never contended for long: the loop only swaps
the list) and schedules a drain only when none is pending. The loop takes the whole list at
once and hands every item to the callback in the order posted, so nothing is reordered and a
lone callback still wakes the loop at once (no added latency). A failing item is reported to
the loop's exception handler, as a failing `call_soon_threadsafe` callback would be, and the
items behind it are still delivered.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

__all__ = ["LoopHandoff"]

T = TypeVar("T")


class LoopHandoff(Generic[T]):
    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[T], object]) -> None:
        self._loop = loop
        self._callback = callback
        self._lock = threading.Lock()
        self._items: list[T] = []
        self._scheduled = False

    def pending(self) -> int:
        """Items posted and not yet taken by the loop (any thread; a length, read whole)."""
        return len(self._items)

    def post(self, item: T) -> None:
        """From any thread. A loop already closed (the gateway stopped while ibapi still decoded a
        backlog) takes nothing more: the item is dropped quietly, as the socket's bytes are, and
        the next connect's reconciliation asks IB again."""
        with self._lock:
            self._items.append(item)
            if self._scheduled:
                return
            self._scheduled = True
        try:
            self._loop.call_soon_threadsafe(self._drain)
        except RuntimeError:
            if not self._loop.is_closed():
                raise

    def _drain(self) -> None:
        """On the loop: everything posted so far, in order."""
        with self._lock:
            items, self._items = self._items, []
            self._scheduled = False
        callback = self._callback
        for item in items:
            try:
                callback(item)
            except Exception as exc:
                self._loop.call_exception_handler({
                    "message": f"IB event handler {callback!r} failed on {item!r}", "exception": exc,
                })
