"""Reading TWS's socket in time linear in what arrives, for ibapi 9.81 and 10.x alike.

ibapi's EReader keeps the bytes it has not framed yet in one `bytes` object and rebuilds that
object on every socket read (the 4 KB reads are glued together the same way) and again for
every message it takes off the front. A backlog of n messages therefore costs time in n²:
replaying 50,000 executions at a reconnect took 3.6 to 49 s, where ibapi's decoder alone takes
about one.

`LinearReader` frames the same stream with one growing `bytearray` and a read offset, and puts
on `EClient.msg_queue` exactly what ibapi's reader puts there: each message's payload as `bytes`,
without its 4-byte length. `EClient.run` decodes those with ibapi's own decoder, unchanged, so
every field is still parsed by ibapi. `LinearReaderClient` is an `EClient` whose `connect` starts
a `LinearReader` where ibapi would have started its `EReader`.
"""

from __future__ import annotations

import logging
import queue
import struct
import threading

from ibapi.client import EClient
from ibapi.connection import Connection
from ibapi.reader import EReader

__all__ = ["LinearReader", "LinearReaderClient", "MessageFramer"]

log = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
"""Every TWS message, in both directions, starts with its payload's length: 4 bytes, big-endian."""

READ_BYTES = 64 * 1024
"""One recv's most. Bigger than ibapi's 4 KB: fewer system calls and Python iterations per backlog."""

COMPACT_AFTER = 64 * 1024
"""Consumed bytes kept at the buffer's front before they are dropped in one move."""


class MessageFramer:
    """Splits a byte stream into message payloads, each byte copied a bounded number of times."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._start = 0  # where the first message not yet handed out begins

    @property
    def pending(self) -> int:
        """Bytes received that do not yet make a whole message."""
        return len(self._buffer) - self._start

    def feed(self, data: bytes) -> list[bytes]:
        """The payloads of the messages `data` completes, in order."""
        buffer = self._buffer
        buffer += data  # amortised: a bytearray grows in place
        messages: list[bytes] = []
        start, end = self._start, len(buffer)
        # A view so each payload is copied once, straight into its own bytes; released before the
        # buffer is resized below (a bytearray refuses to resize while a view is open).
        with memoryview(buffer) as view:
            while end - start >= 4:
                (size,) = _LENGTH.unpack_from(buffer, start)
                stop = start + 4 + size
                if stop > end:
                    break  # the rest of this message is still on its way
                if size:
                    messages.append(bytes(view[start + 4 : stop]))
                # An empty message carries nothing to decode and ibapi's reader drops it too; unlike
                # ibapi's, this one goes on with the messages behind it instead of waiting for a read.
                start = stop
        if start == end:
            buffer.clear()  # the common case between bursts: nothing to move
            start = 0
        elif start >= COMPACT_AFTER:
            # Only the tail (one unfinished message) moves, and its bytes sit at the front afterwards,
            # so they are consumed before the next move: each byte moves at most once.
            del buffer[:start]
            start = 0
        self._start = start
        return messages


class LinearReader(threading.Thread):
    """Stands in for ibapi's `EReader` thread: same inputs, same queue items, same ending.

    The socket is read directly (not through `Connection.recvMsg`, which glues 4 KB reads
    together quadratically too), with `recvMsg`'s handling of what a read can return: a timeout
    is "nothing yet", an empty read or a socket error closes the connection through
    `Connection.disconnect`, and the thread ends once the connection has no socket. `EClient.run`
    then drains the queue and ends, as it does after ibapi's reader. (Unlike `recvMsg`, a timeout
    right after a read of exactly 4 KB loses nothing: `recvMsg` drops those bytes with the timeout
    and ibapi's framing never recovers.)
    """

    def __init__(self, conn: Connection, msg_queue: queue.Queue[bytes]) -> None:
        # Daemon, as ibapi's reader is when started from the session's daemon connect thread:
        # a socket left open must never keep the gateway's process alive.
        super().__init__(name="ibapi-socket-reader", daemon=True)
        self.conn = conn
        self.msg_queue = msg_queue

    def run(self) -> None:
        framer = MessageFramer()
        try:
            while (data := self._receive()) is not None:
                for message in framer.feed(data):
                    self.msg_queue.put(message)
        except Exception:
            # ibapi's reader would log and end here, leaving the socket open and the decoding loop
            # waiting for ever. Closing it makes the session see a disconnect and reconnect.
            log.exception("IB socket reader failed; closing the connection")
            self.conn.disconnect()
        if framer.pending:  # cut off mid-message: dropped, as ibapi's reader drops it
            log.debug("IB socket closed with %d bytes of an unfinished message", framer.pending)

    def _receive(self) -> bytes | None:
        """The next bytes from the socket (b"" when none came in time), None once it is closed."""
        sock = self.conn.socket
        if sock is None:  # EClient.disconnect (ours, the session's, or after a failed read)
            return None
        try:
            data: bytes = sock.recv(READ_BYTES)
        except TimeoutError:
            # Connection.connect set a 1 s timeout so this thread looks up regularly: a disconnect
            # from another thread is then noticed at the next pass.
            return b""
        except OSError:
            self.conn.disconnect()  # broken, or closed under us: a no-op if already closed
            return None
        if not data:
            self.conn.disconnect()  # TWS closed its end
            return None
        return data


class LinearReaderClient(EClient):
    """An `EClient` that reads with `LinearReader`; everything else is ibapi's.

    ibapi 9.81 and 10.x both create their reader inside `connect`
    (`self.reader = reader.EReader(self.conn, self.msg_queue)`) and start it on the next line,
    with no hook in between. This property swaps the `EReader` at that assignment, before it is
    started, so ibapi's reader never touches the socket.
    """

    @property
    def reader(self) -> LinearReader | None:
        return self._linear_reader

    @reader.setter
    def reader(self, value: object) -> None:
        if isinstance(value, EReader):
            value = LinearReader(value.conn, value.msg_queue)
        self._linear_reader = value
