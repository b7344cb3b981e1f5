"""The gateway on its own event loop in a background thread, for synchronous callers: the demo
command and the end-to-end tests, which drive it with ordinary blocking gRPC stubs."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from execgw.server.app import Gateway
from execgw.server.config import Settings
from execgw.server.engine.engine import EngineTimings

T = TypeVar("T")


class GatewayThread:
    def __init__(self, settings: Settings, *, timings: EngineTimings | None = None) -> None:
        self.gateway = Gateway(settings, timings=timings)
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self, connect_timeout: float = 15.0) -> int:
        """Starts the gateway and waits until its IB endpoints are connected; returns the gRPC port."""
        ready = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

        self._thread = threading.Thread(target=run, name="execgw-gateway", daemon=True)
        self._thread.start()
        ready.wait()
        self.port = self.call(self.gateway.start())
        if not self.call(self.gateway.wait_connected(connect_timeout)):
            raise TimeoutError(f"IB endpoints not connected within {connect_timeout}s")
        return self.port

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        """Runs a coroutine on the gateway's loop and returns its result."""
        assert self._loop is not None, "not started"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self, grace: float = 2.0) -> None:
        if self._loop is None or self._thread is None:
            return
        try:
            self.call(self.gateway.stop(grace))
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = None

    def __enter__(self) -> GatewayThread:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
