"""A gateway running in this process, on a thread with its own asyncio loop.

``execgw demo`` and the end-to-end tests use it: the gateway is an asyncio program and the client
is synchronous, so the gateway gets a loop of its own on a background thread.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future
from types import TracebackType
from typing import Any

from execgw.server.app import Gateway
from execgw.server.config import Settings


class GatewayStartError(RuntimeError):
    """The gateway could not start (database, port, IB endpoint); the message says why."""


class LocalGateway:
    """Starts ``Gateway(settings)`` on a background thread; ``start()`` returns once it listens and
    its IB endpoints (the built-in simulator when no ``ib_paper``) are connected.

    ``settings`` defaults to a free port on 127.0.0.1; pass ``database_url`` at least (the
    gateway's own default is ./execgw-data).
    """

    def __init__(self, settings: Settings | None = None, *, connect_timeout: float = 15.0, **settings_fields: Any
                 ) -> None:
        self.settings = settings or Settings(**{"listen": "127.0.0.1:0", **settings_fields})
        self.connect_timeout = connect_timeout
        self.gateway = Gateway(self.settings)
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="execgw-gateway", daemon=True)

    @property
    def target(self) -> str:
        host = self.settings.listen.rpartition(":")[0]
        return f"{host}:{self.port}"

    def start(self) -> LocalGateway:
        self._thread.start()
        try:
            self.port = self._run(self.gateway.start())
            connected = self._run(self.gateway.wait_connected(self.connect_timeout))
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

    def stop(self, grace: float = 2.0) -> None:
        if self._thread.is_alive():
            try:
                self._run(self.gateway.stop(grace))
            except Exception:
                # A gateway that failed half-way through start() may not stop cleanly; the loop
                # and thread are still wound down below.
                if self.port:
                    raise
            finally:
                # As asyncio.run does: tasks still pending after the gateway stopped are cancelled
                # and awaited, so closing the loop does not destroy them mid-flight.
                self._run(_cancel_leftover_tasks())
                self._loop.call_soon_threadsafe(self._loop.stop)
                self._thread.join(timeout=10)
        if not self._thread.is_alive() and not self._loop.is_closed():
            self._loop.close()

    def __enter__(self) -> LocalGateway:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def _run(self, coroutine: Any) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coroutine, self._loop)
        return future.result()


async def _cancel_leftover_tasks() -> None:
    current = asyncio.current_task()
    leftover = [task for task in asyncio.all_tasks() if task is not current]
    for task in leftover:
        task.cancel()
    await asyncio.gather(*leftover, return_exceptions=True)
