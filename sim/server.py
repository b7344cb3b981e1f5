"""Client connections: the handshake, START_API, pacing, dispatch of requests, drops and refusals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque

from execgw.sim import messages, reports, todays_tws
from execgw.sim.engine import Engine
from execgw.sim.requests import Incoming, parse_execution_filter, parse_place_order
from execgw.sim.scenario import Drop
from execgw.sim.wire import API_PREFIX, SERVER_VERSION, FrameReader, ProtocolError, parse_handshake, parse_int

log = logging.getLogger("execgw.sim")

# What TWS 10.30 sent after START_API in a public report (deephaven-examples/deephaven-ib#126).
FARM_NOTICES = (
    (2104, "Market data farm connection is OK:usfarm"),
    (2106, "HMDS data farm connection is OK:ushmds"),
    (2158, "Sec-def data farm connection is OK:secdefnj"),
)

RECONNECT_GRACE = 0.5
"""Seconds a START_API waits for the previous socket of its client id to be seen closed."""

# Requests the simulator accepts without an answer, as TWS does for cancels and settings.
# REQ_AUTO_OPEN_ORDERS only binds manual TWS orders to client 0, of which a simulator has none.
SILENT = frozenset({
    Incoming.REQ_AUTO_OPEN_ORDERS, Incoming.REQ_MARKET_DATA_TYPE, Incoming.CANCEL_ACCOUNT_SUMMARY, Incoming.CANCEL_POSITIONS,
    Incoming.CANCEL_POSITIONS_MULTI, Incoming.CANCEL_ACCOUNT_UPDATES_MULTI,
})


# Requests the Read-Only API setting refuses with 321 besides orders and cancels, with the
# internal request code TWS names in the text (opaque to clients). Executions, positions and
# account data are still answered: ib_async, told readonly, skips exactly these at connect.
READ_ONLY_REFUSED = {
    Incoming.REQ_OPEN_ORDERS: "bY",
    Incoming.REQ_ALL_OPEN_ORDERS: "bZ",
    Incoming.REQ_AUTO_OPEN_ORDERS: "ba",
    Incoming.REQ_COMPLETED_ORDERS: "cg",
}


class Connection:
    """One client socket. After START_API it is the engine's Session for its client id."""

    def __init__(self, server: Server, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.server = server
        self.engine = server.engine
        self.reader = reader
        self.writer = writer
        self.client_id = -1
        self.peer = writer.get_extra_info("peername")
        self.sent = 0
        self.closed = False
        self.closed_event = asyncio.Event()
        self._frames = FrameReader()
        self._pending: list[list[str]] = []
        self._outbox: list[bytes] = []
        self._received: deque[float] = deque()
        self._over_limit_seconds: list[int] = []

    # ---- Session -----------------------------------------------------------------------------

    def send(self, message: bytes) -> None:
        """Queue a message; everything queued in one loop iteration goes out in one write."""
        if self.closed:
            return
        self._outbox.append(message)
        if len(self._outbox) == 1:
            asyncio.get_running_loop().call_soon(self._flush)
        self.sent += 1
        self.server.after_send(self)

    def _flush(self) -> None:
        if self._outbox and not self.writer.is_closing():
            self.writer.write(b"".join(self._outbox))
        self._outbox.clear()

    async def drain(self) -> None:
        """Wait until the socket took what was sent: a flood must not outrun a slow reader."""
        self._flush()
        if not self.closed:
            with contextlib.suppress(ConnectionError):
                await self.writer.drain()

    def close(self, why: str) -> None:
        if self.closed:
            return
        self._flush()  # what was sent before the close still reaches the client, as with TWS
        self.closed = True
        self.closed_event.set()
        log.info("closing connection of client %d (%s): %s", self.client_id, self.peer, why)
        self.writer.close()
        self.engine.unregister(self)

    # ---- the conversation --------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            if await self._handshake():
                async for message in self._messages():
                    if message and message[0] == str(int(Incoming.START_API)):
                        if not await self._start_api(message):
                            return
                        break
                async for message in self._messages():
                    if self.server.goes_away_before(self, message):
                        return
                    self.engine.log_request(self.client_id, message)
                    if self._within_pacing():
                        self._dispatch(message)
                    elif message and message[0] == str(int(Incoming.PLACE_ORDER)):
                        with contextlib.suppress(ValueError, IndexError):
                            self.engine.dropped_by_pacing(self.client_id, parse_place_order(message))
        except (ConnectionError, ProtocolError, asyncio.IncompleteReadError) as exc:
            log.info("client %d (%s): %s", self.client_id, self.peer, exc)
        finally:
            self.close("end of conversation")

    async def _read(self) -> bytes:
        data = await self.reader.read(65536)
        if not data:
            raise ConnectionError("peer closed the connection")
        return data

    async def _handshake(self) -> bool:
        while (prefix := self._frames.take_prefix(API_PREFIX)) is None:
            self._frames.extend(await self._read())
        if not prefix:
            log.warning("connection from %s did not start with API\\0", self.peer)
            return False
        first = self._frames.feed(b"")
        while not first:
            first = self._frames.feed(await self._read())
        low, high, options = parse_handshake(first[0])
        if self.engine.scenario.handshake == "silent":
            await self._stay_silent()
            return False
        version = min(high, SERVER_VERSION)
        if version < low:
            log.warning("client %s wants versions %d..%d, the simulator speaks %d", self.peer, low, high,
                        SERVER_VERSION)
            return False
        self.writer.write(messages.handshake_reply(version, self.engine.clock(), self.engine.scenario.time_zone))
        self._pending = first[1:]
        log.debug("handshake with %s at version %d (options %r)", self.peer, version, options)
        return True

    async def _stay_silent(self) -> None:
        """As TWS with an untrusted IP or an unanswered "accept incoming connection" dialog: the
        socket stays open, whatever the client sends is read, and nothing ever comes back."""
        log.info("connection from %s: handshake read, never answered (scenario handshake=silent)", self.peer)
        while await self.reader.read(65536):
            pass
        raise ConnectionError("peer closed the unanswered connection")

    async def _messages(self):  # noqa: ANN202 - an async generator of field lists
        while True:
            # Pop one at a time: a caller that stops iterating (after START_API) leaves the rest
            # of what arrived in the same read for the next loop.
            while self._pending:
                yield self._pending.pop(0)
            self._pending = self._frames.feed(await self._read())

    async def _start_api(self, message: list[str]) -> bool:
        client_id = parse_int(message[2]) if len(message) > 2 else None
        self.client_id = client_id if client_id is not None else 0
        holder = self.engine.sessions.get(self.client_id)
        if isinstance(holder, Connection):
            # A client that disconnects and reconnects at once: its EOF is usually already queued
            # behind this START_API, so give the old socket a moment to be seen closing.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(holder.closed_event.wait(), RECONNECT_GRACE)
        if self.client_id in self.engine.sessions:
            # TWS answers and then closes the socket; clients see 326 and then a disconnect.
            self.writer.write(messages.error(
                -1, 326, "Unable to connect as the client id is already in use. Retry with a unique client id."))
            log.info("client id %d from %s refused: already in use", self.client_id, self.peer)
            return False
        self.engine.register(self)
        log.info("client %d connected from %s", self.client_id, self.peer)
        self.send(messages.managed_accounts(self.engine.accounts))
        self.send(messages.next_valid_id(self.engine.next_valid_id(self.client_id)))
        for code, text in FARM_NOTICES:
            self.send(messages.error(-1, code, text))
        # TWS re-sends a reconnecting client's working orders; fills it missed are not re-sent.
        for order in self.engine.orders:
            if order.client_id == self.client_id and not order.is_final:
                reports.resend_order(self, order)
        return True

    def _within_pacing(self) -> bool:
        """IB's 50 messages per second: error 100 and the message dropped; persistent abuse disconnects."""
        limit = self.engine.scenario.max_messages_per_second
        if not limit:
            return True
        now = time.monotonic()
        while self._received and now - self._received[0] >= 1.0:
            self._received.popleft()
        if len(self._received) < limit:
            self._received.append(now)
            return True
        second = int(now)
        if second not in self._over_limit_seconds:
            self._over_limit_seconds = [s for s in self._over_limit_seconds if s >= second - 1] + [second]
            self.send(messages.error(-1, 100, "Max rate of messages per second has been exceeded."))
            allowed = self.engine.scenario.pacing_violations_before_disconnect
            if len(self._over_limit_seconds) >= allowed or allowed <= 1:
                self.close("pacing violated in consecutive seconds")
        return False

    def _dispatch(self, message: list[str]) -> None:
        try:
            self._answer(message)
        except (ValueError, IndexError) as exc:
            log.warning("client %d sent an unreadable message %r: %s", self.client_id, message[:4], exc)
            self.send(messages.error(-1, 320, f"Error reading request: {exc}"))

    def _answer(self, message: list[str]) -> None:
        engine = self.engine
        try:
            kind = Incoming(int(message[0]))
        except ValueError:
            log.warning("client %d sent unknown message id %r", self.client_id, message[0])
            self.send(messages.error(-1, 321, f"Error validating request.-'{message[0]}' : "
                                     "cause - Unknown message id"))
            return
        if engine.scenario.read_only and kind in READ_ONLY_REFUSED:
            # No request id to answer with: TWS puts 2147483647 on these.
            self.send(messages.error(todays_tws.NO_REQUEST_ID, todays_tws.READ_ONLY,
                                     todays_tws.read_only_text(READ_ONLY_REFUSED[kind])))
            log.info("client %d: %s refused, Read-Only API", self.client_id, kind.name)
            return
        if kind == Incoming.PLACE_ORDER:
            engine.place_order(self.client_id, parse_place_order(message))
        elif kind == Incoming.CANCEL_ORDER:
            engine.cancel_order(self.client_id, parse_int(message[2]) or 0)
        elif kind == Incoming.REQ_OPEN_ORDERS:
            reports.open_orders(engine, self, every_client=False)
        elif kind == Incoming.REQ_ALL_OPEN_ORDERS:
            reports.open_orders(engine, self, every_client=True)
        elif kind == Incoming.REQ_COMPLETED_ORDERS:
            reports.completed_orders(engine, self, api_only=bool(parse_int(message[1]) or 0) if len(message) > 1 else False)
        elif kind == Incoming.REQ_EXECUTIONS:
            req_id, wanted = parse_execution_filter(message)
            count = reports.executions(engine, self, req_id, wanted)
            log.info("client %d: reqExecutions %d answered with %d executions", self.client_id, req_id, count)
        elif kind == Incoming.REQ_IDS:
            self.send(messages.next_valid_id(engine.next_valid_id(self.client_id)))
        elif kind == Incoming.REQ_CURRENT_TIME:
            self.send(messages.current_time(engine.clock()))
        elif kind == Incoming.REQ_MANAGED_ACCTS:
            self.send(messages.managed_accounts(engine.accounts))
        elif kind == Incoming.REQ_POSITIONS:
            reports.positions(engine, self)
        elif kind == Incoming.REQ_ACCOUNT_UPDATES:
            if parse_int(message[2]):
                reports.account_updates(engine, self, message[3] or engine.accounts[0])
        elif kind == Incoming.REQ_ACCOUNT_UPDATES_MULTI:
            self.send(messages.account_update_multi_end(parse_int(message[2]) or 0))
        elif kind == Incoming.REQ_POSITIONS_MULTI:
            self.send(messages.position_multi_end(parse_int(message[2]) or 0))
        elif kind == Incoming.REQ_ACCOUNT_SUMMARY:
            self.send(messages.account_summary_end(parse_int(message[2]) or 0))
        elif kind in SILENT:
            pass
        else:
            log.info("client %d: %s is not simulated", self.client_id, kind.name)
            req_id = parse_int(message[2]) if len(message) > 2 else None
            self.send(messages.error(req_id if req_id is not None else -1, 321,
                                     f"Error validating request.-'{kind.name}' : cause - not supported "
                                     "by the simulator"))


class Server:
    """Listens for clients; owns the connections and the connection-level faults."""

    def __init__(self, engine: Engine, drops: list[Drop]) -> None:
        self.engine = engine
        self.connections: set[Connection] = set()
        self.host = "127.0.0.1"
        self.port = 0
        self._listener: asyncio.Server | None = None
        self._message_drops = [d for d in drops if d.after_messages is not None]
        self._order_drops: set[str] = set()  # orderRefs whose placeOrder finds TWS gone
        self._tasks: set[asyncio.Task[None]] = set()

    async def listen(self, host: str, port: int) -> int:
        self._listener = await asyncio.start_server(self._accept, host, port, reuse_address=True)
        self.host = host
        self.port = self._listener.sockets[0].getsockname()[1]
        return self.port

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = Connection(self, reader, writer)
        self.connections.add(connection)
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            await connection.serve()
        finally:
            self.connections.discard(connection)
            if task is not None:
                self._tasks.discard(task)

    def after_send(self, connection: Connection) -> None:
        for drop in list(self._message_drops):
            if drop.client_id in (None, connection.client_id) and connection.sent >= (drop.after_messages or 0):
                self._message_drops.remove(drop)
                connection.close(f"scenario drop after {drop.after_messages} messages")

    def drop_before_order(self, order_ref: str) -> None:
        """The next placeOrder with ``order_ref`` finds TWS going away: its connection closes with
        that message (and whatever followed it) unread, so the order never exists."""
        self._order_drops.add(order_ref)

    def goes_away_before(self, connection: Connection, message: list[str]) -> bool:
        """Closes `connection` unread if `message` is a placeOrder :meth:`drop_before_order` named."""
        if not self._order_drops or not message or message[0] != str(int(Incoming.PLACE_ORDER)):
            return False
        try:
            order_ref = parse_place_order(message).order_ref
        except (ValueError, IndexError):
            return False
        if order_ref not in self._order_drops:
            return False
        self._order_drops.discard(order_ref)
        connection.close(f"went away with the placeOrder of {order_ref!r} unread")
        return True

    def drop(self, client_id: int | None = None) -> int:
        """Close the sockets of every client (or of one client id); returns how many were closed."""
        victims = [c for c in self.connections if client_id is None or c.client_id == client_id]
        for connection in victims:
            connection.close("dropped by the simulator")
        return len(victims)

    async def refuse(self, seconds: float) -> None:
        """Stop listening (connections are refused) for ``seconds``, then listen on the same port."""
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.drop()
        log.info("refusing connections for %gs", seconds)
        await asyncio.sleep(seconds)
        await self.listen(self.host, self.port)
        log.info("accepting connections again on %s:%d", self.host, self.port)

    async def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        self.drop()
        # Closed sockets end their conversations by themselves; cancelling a stream's handler
        # instead makes asyncio (3.11) log the CancelledError as an unhandled exception.
        if self._tasks:
            _, stuck = await asyncio.wait(set(self._tasks), timeout=2.0)
            for task in stuck:
                task.cancel()
