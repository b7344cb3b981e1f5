"""The gateway's own IB socket reader (`execgw.server.ib.reader`) against ibapi's.

ibapi's EReader frames in time quadratic in a backlog; ours must hand `EClient.msg_queue` the very
same items. The same byte stream, cut into reads in every awkward way, goes through ibapi's stock
framing and through ours, and the message lists must be identical, byte for byte and in type.
The streams are the simulator's own server-version-157 messages: executions, commission reports,
order statuses, open orders, and an error longer than one 4 KB read.

Runs under ibapi 9.81 (.venv) and 10.x (.venv-ibapi10): "stock" is whichever ibapi is installed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import queue
import random
import socket
import threading
import time
from typing import Any

import pytest
from ibapi import comm
from ibapi.connection import Connection
from ibapi.reader import EReader
from ibapi.wrapper import EWrapper

from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.reader import LinearReader, LinearReaderClient, MessageFramer
from execgw.server.ib.session import IBSession
from execgw.sim import messages
from execgw.sim.records import Contract, Execution, Order
from execgw.sim.thread import SimulatorThread

AAPL = Contract("AAPL", con_id=265598, primary_exchange="NASDAQ")
START = dt.datetime(2026, 7, 15, 13, 30, tzinfo=dt.UTC)


def _execution(i: int) -> Execution:
    return Execution(
        exec_id=f"0000e0d5.6770a1b2.01.{i:06d}", order_ref="run-7f3c-ord-0001", order_id=501, perm_id=1_800_000_001,
        client_id=1, account="DU1234567", contract=AAPL, side="BOT", shares=1.0, price=190.25 + i / 100,
        cum_qty=float(i + 1), avg_price=190.25 + i / 200, time=START + dt.timedelta(milliseconds=i),
        commission=0.35, venue="ISLAND",
    )


def _order(filled: float) -> Order:
    return Order(order_id=501, client_id=1, perm_id=1_800_000_001, contract=AAPL, action="BUY", quantity=100_000,
                 order_type="MKT", account="DU1234567", order_ref="run-7f3c-ord-0001", tif="DAY",
                 status="Submitted", filled=filled, avg_fill_price=190.3, last_fill_price=190.31)


def _backlog(executions: int) -> list[bytes]:
    """A reconnect's replay as TWS sends it: accounts, next id, open orders, then executions each
    with its order status and commission, one long error on the way, and the end marker."""
    frames = [messages.managed_accounts(["DU1234567"]), messages.next_valid_id(502),
              messages.open_order(_order(0.0)), messages.open_order_end()]
    for i in range(executions):
        execution = _execution(i)
        frames += [messages.execution_data(-1, execution), messages.order_status(_order(i + 1.0)),
                   messages.commission_report(execution)]
        if i == executions // 2:
            # Longer than a 4 KB read: one message spread over several reads.
            frames.append(messages.error(501, 399, "Order message: " + "warning text " * 700))
    frames.append(messages.execution_data_end(-1))
    return frames


def _payloads(frames: list[bytes]) -> list[bytes]:
    return [f[4:] for f in frames]


# -- the stock side -------------------------------------------------------------------------------


def _stock_framing(reads: list[bytes]) -> tuple[list[bytes], int]:
    """ibapi EReader.run's framing loop around the installed `ibapi.comm.read_msg`."""
    buf, out = b"", []
    for data in reads:
        buf += data
        while len(buf) > 0:
            _, msg, buf = comm.read_msg(buf)
            if not msg:
                break
            out.append(msg)
    return out, len(buf)


def _ours(reads: list[bytes]) -> tuple[list[bytes], int]:
    framer = MessageFramer()
    out: list[bytes] = []
    for data in reads:
        out += framer.feed(data)
    return out, framer.pending


class ScriptedSocket:
    """A socket whose recv() plays a script: bytes (at most what is asked for per call), or an
    exception to raise (TimeoutError is ibapi's socket.timeout); the end of the script is TWS
    closing its end (b"")."""

    def __init__(self, script: list[bytes | BaseException]) -> None:
        self._script = list(script)
        self.closed = False

    def recv(self, size: int) -> bytes:
        if not self._script:
            return b""
        item = self._script.pop(0)
        if isinstance(item, BaseException):
            raise item
        if len(item) > size:
            self._script.insert(0, item[size:])
        return item[:size]

    def close(self) -> None:
        self.closed = True


def _run_reader(reader_class: type, script: list[bytes | BaseException]) -> tuple[list[Any], Connection]:
    """Runs a reader thread's body (here, synchronously) on ibapi's real Connection whose socket
    plays the script; returns what it queued and the connection."""
    conn = Connection("127.0.0.1", 0)
    sock = ScriptedSocket(script)
    conn.socket = sock
    msg_queue: queue.Queue[bytes] = queue.Queue()
    reader_class(conn, msg_queue).run()
    assert sock.closed, f"{reader_class.__name__} left the socket open"
    return list(msg_queue.queue), conn


def _same_through_both_readers(script: list[bytes | BaseException]) -> list[bytes]:
    stock, stock_conn = _run_reader(EReader, script)
    ours, our_conn = _run_reader(LinearReader, script)
    assert [type(m) for m in ours] == [type(m) for m in stock]
    assert ours == stock
    # Connection-closed handling as ibapi's: the reader closed the connection, so EClient.run ends.
    assert not stock_conn.isConnected() and not our_conn.isConnected()
    return ours


def _in_reads(stream: bytes, size: int) -> list[bytes]:
    return [stream[i : i + size] for i in range(0, len(stream), size)]


# -- framing: every awkward split -----------------------------------------------------------------


def test_a_backlog_in_4kb_reads_frames_identically() -> None:
    frames = _backlog(2_000)
    reads = _in_reads(b"".join(frames), 4096)
    stock, stock_left = _stock_framing(reads)
    ours, our_left = _ours(reads)
    assert ours == stock == _payloads(frames)
    assert all(type(m) is bytes for m in ours)
    assert our_left == stock_left == 0


def test_every_single_split_point_frames_identically() -> None:
    """Cut once at every byte: inside a length prefix (1, 2, 3 bytes in), right after it, inside a
    payload, exactly at a frame boundary, inside the long error."""
    frames = _backlog(3)
    stream = b"".join(frames)
    for cut in range(1, len(stream)):
        reads = [stream[:cut], stream[cut:]]
        assert _ours(reads) == _stock_framing(reads), f"cut at byte {cut}"


def test_every_pair_of_split_points_frames_identically() -> None:
    """Cut twice everywhere over three short frames: both cuts in one prefix, one read holding only
    part of a prefix, a frame split across three reads, empty reads between."""
    frames = [messages.next_valid_id(502), messages.execution_data_end(-1), messages.error(-1, 2104, "ok")]
    stream = b"".join(frames)
    for first in range(len(stream) + 1):
        for second in range(first, len(stream) + 1):
            reads = [stream[:first], stream[first:second], stream[second:]]
            assert _ours(reads) == _stock_framing(reads) == (_payloads(frames), 0), (first, second)


def test_byte_by_byte_and_random_reads_frame_identically() -> None:
    frames = _backlog(200)
    stream = b"".join(frames)
    rng = random.Random(20261128)
    schemes = {"byte by byte": _in_reads(stream, 1)}
    for attempt in range(20):
        reads, at = [], 0
        while at < len(stream):
            size = rng.choice([1, 2, 3, 4, 5, rng.randint(1, 600), rng.randint(1, 4096), 4096])
            reads.append(stream[at : at + size])
            at += size
        schemes[f"random {attempt}"] = reads
    for name, reads in schemes.items():
        assert _ours(reads) == _stock_framing(reads) == (_payloads(frames), 0), name


def test_an_unfinished_message_is_kept_until_its_rest_comes() -> None:
    frame = messages.execution_data(-1, _execution(1))
    framer = MessageFramer()
    assert framer.feed(frame[:2]) == [] and framer.pending == 2
    assert framer.feed(frame[2:-1]) == [] and framer.pending == len(frame) - 1
    assert framer.feed(frame[-1:] + frame[:3]) == [frame[4:]] and framer.pending == 3


def test_a_long_backlog_keeps_little_memory() -> None:
    """Consumed bytes are dropped as it goes: the buffer never holds the backlog."""
    framer = MessageFramer()
    largest = 0
    for data in _in_reads(b"".join(_backlog(3_000)), 4096):
        framer.feed(data)
        largest = max(largest, len(framer._buffer))
    assert largest < 64 * 1024 + 2 * 4096 + 10_000


def test_an_empty_message_is_dropped_as_ibapi_drops_it_and_holds_nothing_up() -> None:
    frames = [messages.next_valid_id(502), b"\0\0\0\0", messages.execution_data_end(-1)]
    ours, left = _ours([b"".join(frames)])
    assert ours == _payloads([frames[0], frames[2]]) and left == 0
    # ibapi drops it too, but frames nothing more until the next read comes.
    stock, _ = _stock_framing([b"".join(frames), b""])
    assert stock == ours


# -- the reader threads: ibapi's real EReader and Connection vs ours -----------------------------


def test_the_readers_queue_the_same_items_and_close_the_connection_at_tws_close() -> None:
    stream = b"".join(_backlog(500))
    script: list[bytes | BaseException] = []
    for i, data in enumerate(_in_reads(stream, 4096)):
        # Reads of every size, some exactly 4 KB (ibapi's connection then reads again at once).
        script += [data[:1], data[1:7], data[7:]] if i % 3 == 0 else [data]
    assert _same_through_both_readers(script) == _payloads(_backlog(500))


def test_the_readers_agree_at_every_split_point_with_quiet_spells_and_the_close() -> None:
    frames = _backlog(2)
    stream = b"".join(frames)
    for cut in range(1, len(stream)):
        # A quiet second (socket timeout) between the halves, then TWS closes (empty read).
        script: list[bytes | BaseException] = [stream[:cut], TimeoutError("timed out"), stream[cut:], b""]
        if cut % 4096 == 0:  # ibapi loses a full 4 KB read followed by a timeout: see below
            continue
        assert _same_through_both_readers(script) == _payloads(frames), f"cut at byte {cut}"


def test_a_message_cut_off_by_the_close_is_dropped_by_both() -> None:
    frames = _backlog(3)
    stream = b"".join(frames)
    assert _same_through_both_readers([stream[:-10]]) == _payloads(frames[:-1])


def test_a_socket_error_ends_both_readers_with_what_they_had() -> None:
    frames = _backlog(3)
    stream = b"".join(frames)
    cut = len(b"".join(frames[:5])) + 7
    script: list[bytes | BaseException] = [stream[:cut], ConnectionResetError(104, "Connection reset by peer"),
                                           stream[cut:]]
    assert _same_through_both_readers(script) == _payloads(frames[:5])


def test_a_disconnect_from_another_thread_ends_the_reader() -> None:
    conn = Connection("127.0.0.1", 0)
    conn.socket = ScriptedSocket([TimeoutError()] * 1000)
    reader = LinearReader(conn, queue.Queue())
    conn.disconnect()  # what EClient.disconnect does from the session's thread
    reader.run()  # returns: it looks at the socket before every read


def test_a_full_4kb_read_followed_by_a_quiet_spell_loses_nothing() -> None:
    """ibapi's connection keeps reading after a read of exactly 4 KB; when the next read times
    out, the socket.timeout throws away the 4 KB it had. Ours reads the socket itself."""
    frames = _backlog(40)
    stream = b"".join(frames)
    script: list[bytes | BaseException] = [stream[:4096], TimeoutError("timed out"), stream[4096:]]
    ours, _ = _run_reader(LinearReader, script)
    assert ours == _payloads(frames)


# -- ibapi's EClient reading with it, over TCP ------------------------------------------------------


class CountingWrapper(EWrapper):
    def __init__(self) -> None:
        super().__init__()
        self.executions: list[tuple[str, float, float, str]] = []
        self.commissions: list[str] = []
        self.next_ids: list[int] = []
        self.errors: list[int] = []
        self.closed = threading.Event()

    def nextValidId(self, orderId: int) -> None:
        self.next_ids.append(orderId)

    def execDetails(self, reqId: int, contract: Any, execution: Any) -> None:
        self.executions.append((execution.execId, float(execution.shares), execution.price, contract.symbol))

    def commissionReport(self, commissionReport: Any) -> None:  # ibapi 9.81
        self.commissions.append(commissionReport.execId)

    def commissionAndFeesReport(self, commissionAndFeesReport: Any) -> None:  # ibapi 10.x
        self.commissions.append(commissionAndFeesReport.execId)

    def error(self, reqId: int, *args: Any) -> None:
        self.errors.append(next(a for a in args if isinstance(a, int) and 0 < a < 100_000))

    def connectionClosed(self) -> None:
        self.closed.set()


def _serve_once(listener: socket.socket, stream: bytes) -> None:
    """A TWS at server version 157: answers the handshake, waits for START_API as TWS does, replays
    `stream` in sends of awkward sizes (pausing so they arrive as separate reads), then closes."""
    conn, _ = listener.accept()
    with conn:
        got = b""

        def framed_message_at(start: int) -> int:
            """Reads until a whole framed message starting at `start` is in; returns its end."""
            nonlocal got
            while len(got) < start + 4 or len(got) < start + 4 + int.from_bytes(got[start : start + 4], "big"):
                got += conn.recv(4096)
            return start + 4 + int.from_bytes(got[start : start + 4], "big")

        version_end = framed_message_at(len(b"API\0"))
        conn.sendall(messages.handshake_reply(157, START))
        framed_message_at(version_end)  # START_API: the client's reader runs from here on
        at, sizes = 0, [1, 3, 4097, 2, 5000, 9, 4096, 700, 1]
        for size in sizes * 6:
            conn.sendall(stream[at : at + size])
            at += size
            time.sleep(0.002)
        conn.sendall(stream[at:])  # the rest at once: a backlog already waiting in the socket
        conn.shutdown(socket.SHUT_WR)
        while conn.recv(4096):  # until the client closes its end
            pass


@pytest.mark.timeout(60)
def test_ibapis_eclient_decodes_every_field_through_it_and_ends_when_tws_closes() -> None:
    executions = 3_000
    frames = _backlog(executions)
    listener = socket.create_server(("127.0.0.1", 0))
    tws = threading.Thread(target=_serve_once, args=(listener, b"".join(frames)), daemon=True)
    tws.start()
    wrapper = CountingWrapper()
    client = LinearReaderClient(wrapper)
    client.connect("127.0.0.1", listener.getsockname()[1], 7)
    reader = client.reader
    assert isinstance(reader, LinearReader), f"ibapi's connect started {type(reader)}"
    assert not [t for t in threading.enumerate() if isinstance(t, EReader)], "ibapi's own reader runs too"
    loop = threading.Thread(target=client.run, daemon=True)
    loop.start()
    loop.join(30)
    assert not loop.is_alive(), "EClient.run did not end after TWS closed the socket"
    reader.join(5)
    assert not reader.is_alive()
    assert wrapper.closed.is_set() and not client.isConnected()
    expected = [_execution(i) for i in range(executions)]
    assert wrapper.executions == [(e.exec_id, 1.0, e.price, "AAPL") for e in expected]
    assert wrapper.commissions == [e.exec_id for e in expected]
    assert wrapper.next_ids == [502] and wrapper.errors == [399]
    tws.join(5)
    listener.close()


# -- the session reads with it ----------------------------------------------------------------------


@pytest.mark.timeout(60)
def test_the_session_reads_with_it_and_still_sees_a_dropped_socket() -> None:
    async def scenario() -> None:
        seen: list[ev.IbEvent] = []
        with SimulatorThread(accounts=["DU1234567"]) as sim:
            session = IBSession(Endpoint("paper", "127.0.0.1", sim.port, 7), seen.append,
                                connect_timeout=5, reconnect_initial=0.05, reconnect_max=0.2)
            session.start()
            try:
                assert await session.wait_ready(10)
                client = session._client
                assert client is not None and isinstance(client.reader, LinearReader)
                sim.drop_connections()
                deadline = time.monotonic() + 10
                while not any(isinstance(e, ev.Disconnected) for e in seen):
                    assert time.monotonic() < deadline, "the session never saw the socket drop"
                    await asyncio.sleep(0.02)
                assert await session.wait_ready(10), "no reconnect after the drop"
                assert session._client is not client and isinstance(session._client.reader, LinearReader)
            finally:
                await session.stop()

    asyncio.run(scenario())
