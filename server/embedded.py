"""The gateway on its own event loop in a background thread, for synchronous callers: the demo
command and the end-to-end tests, which drive it with ordinary blocking gRPC clients."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from execgw.server import event_loop
from execgw.server.app import Gateway
from execgw.server.config import Settings
from execgw.server.engine.runs import EngineTimings

T = TypeVar("T")


class GatewayStartError(RuntimeError):
    """The gateway could not start (database, port, IB endpoint); the message says why."""


class GatewayThread:
    """`start()` returns once the gateway listens and its IB endpoints are connected.

    `settings` defaults to a free port on 127.0.0.1; other `Settings` fields may be given as
    keywords (pass `database_url` at least: the gateway's own default is ./execgw-data)."""

    def __init__(
        self,
        settings: Settings | None = None,
        *,
        timings: EngineTimings | None = None,
        connect_timeout: float = 15.0,
        **settings_fields: Any,
    ) -> None:
        self.settings = settings or Settings(**{"listen": "127.0.0.1:0", **settings_fields})
        self.gateway = Gateway(self.settings, timings=timings)
        self.connect_timeout = connect_timeout
        self.port = 0
        self._loop = event_loop.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="execgw-gateway", daemon=True)

    @property
    def target(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    def start(self) -> GatewayThread:
        self._thread.start()
        try:
            self.port = self.call(self.gateway.start())
            connected = self.call(self.gateway.wait_connected(self.connect_timeout))
        except Exception as exc:
            self.stop()
            raise GatewayStartError(f"gateway did not start: {exc}") from exc
        except BaseException:
            self.stop()
            raise
        if not connected:
            self.stop()
            raise GatewayStartError(f"gateway's IB endpoints not connected within {self.connect_timeout:g}s")
        return self

    def call(self, coroutine: Coroutine[Any, Any, T], timeout: float | None = 60.0) -> T:
        """Runs a coroutine on the gateway's loop and returns its result."""
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result(timeout)

    def stop(self, grace: float = 2.0) -> None:
        if self._thread.is_alive():
            try:
                self.call(self.gateway.stop(grace))
            except Exception:
                # A gateway that failed half-way through start() may not stop cleanly; the loop
                # and thread are still wound down below.
                if self.port:
                    raise
            finally:
                # As asyncio.run does: what is still pending is cancelled and awaited, so closing
                # the loop does not destroy tasks mid-flight.
                self.call(_cancel_leftover_tasks())
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> GatewayThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


async def _cancel_leftover_tasks() -> None:
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)
