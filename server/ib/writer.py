"""Writing to TWS's socket: off the event loop, one message at a time, and knowing whether it left.

ibapi does not tell its caller whether a message reached the socket. Its connection's `sendMsg`
returns 0 when the socket closed after the caller's connected check; 10.x turns a socket error
into an `error(orderId, 512 "Order Sending Error")` callback and returns normally; both answer a
closed client with `error(orderId, 504, "Not connected")` and write nothing. Read as IB reports,
those would make an order that never left look refused, or leave it PENDING_SUBMIT for ever.

So every send runs on one thread of the session's own (in the order it was asked for; the loop
never blocks on a full socket buffer), the socket write is watched, and whatever ibapi reports
through `error` on that thread during the call is its verdict on this send (TWS's own messages
arrive on the reader thread), returned to the caller as the outcome instead of passed on.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from ibapi.client import EClient

from execgw.server.ib.pacing import WriteSpacing

log = logging.getLogger(__name__)


class NotSent(ConnectionError):
    """Nothing of the message was written: IB certainly did not get it."""


class MaybeSent(ConnectionError):
    """The write failed part-way or with a socket error: IB may or may not have the message."""


@dataclass
class _Send:
    """What happened during one send call on the writer thread."""

    written: int = 0
    unsent: int = 0  # messages ibapi's connection declined to write (socket already closed)
    short: bool = False  # a write that put only part of a message on the socket
    failure: OSError | None = None
    client_errors: list[tuple[int, str]] = field(default_factory=list)

    def verdict(self, what: str) -> None:
        """Raises unless every message of the call was written whole."""
        said = "; ".join(f"ibapi {code}: {message}" for code, message in self.client_errors)
        if self.failure is not None or self.short:
            problem = f"socket write failed ({self.failure})" if self.failure else "socket took only part of it"
            raise MaybeSent(f"{what}: {problem}{'; ' + said if said else ''}")
        if self.unsent or not self.written:
            raise NotSent(f"{what}: not written, the socket to IB is closed{'; ' + said if said else ''}")
        if self.client_errors:
            log.warning("%s was written, yet ibapi reported: %s", what, said)


class SocketWriter:
    """Runs one session's sends in order on a thread of its own and tells what reached the socket."""

    def __init__(self, name: str, spacing: WriteSpacing) -> None:
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=name)
        self._local = threading.local()
        self._spacing = spacing

    def watch(self, client: EClient) -> None:
        """Watches the writes of a connected client (its `conn` exists once connect returned)."""
        connection = client.conn
        write: Callable[[bytes], int] = connection.sendMsg
        local = self._local
        spacing = self._spacing

        def watched(message: bytes) -> int:
            send: _Send | None = getattr(local, "send", None)
            spacing.before_write()  # IB's rate counts messages as they arrive: paced at the socket
            try:
                written = write(message)
            except OSError as exc:
                if send is not None:
                    send.failure = exc
                raise
            if send is not None:
                if not written:
                    send.unsent += 1
                elif written < len(message):
                    send.short = True
                else:
                    send.written += 1
            return written

        connection.sendMsg = watched

    def claims_error(self, code: int, message: str) -> bool:
        """For the translator: True if this `error` callback is ibapi's own verdict on a send in
        progress on the calling thread; it is then the sender's outcome, not a report from IB."""
        send: _Send | None = getattr(self._local, "send", None)
        if send is None:
            return False
        send.client_errors.append((code, message))
        return True

    async def send(self, client: EClient, action: Callable[[EClient], None], what: str) -> None:
        """Runs `action` (an ibapi request) on the writer thread. Raises NotSent if nothing was
        written, MaybeSent if the write failed part-way; other exceptions from ibapi pass through
        (as MaybeSent once anything was written)."""

        def run() -> _Send:
            send = _Send()
            self._local.send = send
            try:
                action(client)
            except OSError as exc:  # 9.81 lets socket errors out of its request methods
                send.failure = send.failure or exc
            except Exception as exc:
                if send.written or send.unsent or send.short:
                    send.failure = OSError(f"ibapi raised {exc!r} after writing")
                else:
                    raise
            finally:
                self._local.send = None
            return send

        outcome = await asyncio.get_running_loop().run_in_executor(self._executor, run)
        outcome.verdict(what)

    def close(self) -> None:
        # A write blocked on a full socket ends with ibapi's socket timeout; do not wait for it.
        self._executor.shutdown(wait=False, cancel_futures=True)
