"""Messages per second framed by ibapi's stock reader and by the gateway's `LinearReader`.

    .venv/bin/python benchmarks/reader.py [--frames 5000 20000 50000] [--tcp]

Each size is a backlog of execution-sized frames (the simulator's execDetails, about 185 bytes)
as a reconnect's replay brings them, delivered to the reader in 4 KB reads and then closed:

- stock: ibapi's `EReader.run` on ibapi's `Connection`, as `EClient.connect` starts it;
- ours: `execgw.server.ib.reader.LinearReader` on the same connection and bytes.

By default the socket is an in-memory stand-in whose every recv() returns at most 4,096 bytes of
the backlog (what a socket holding the backlog returns to ibapi's `recv(4096)`), so the figures
are the readers' own cost, repeatable. `--tcp` sends the backlog over loopback TCP from another
thread instead, each reader reading as it does in the gateway (ibapi 4 KB per recv, ours 64 KB):
closer to life, noisier. Only framing is timed, not ibapi's decoder (which both readers leave to
`EClient.run` alike). Both readers must queue identical messages, or it fails.
"""

from __future__ import annotations

import argparse
import datetime as dt
import queue
import socket
import sys
import threading
import time
from collections.abc import Callable

from ibapi.connection import Connection
from ibapi.reader import EReader

from execgw.server.ib.reader import LinearReader
from execgw.sim import messages
from execgw.sim.records import Contract, Execution

READ = 4096

Reader = Callable[[Connection, "queue.Queue[bytes]"], threading.Thread]


CONTRACT = Contract("AAPL", con_id=265598, primary_exchange="NASDAQ")
START = dt.datetime(2026, 7, 15, 13, 30, tzinfo=dt.UTC)


def sample_execution(i: int) -> Execution:
    """The i-th one-share execution of one order, as the simulator records it (also used by
    benchmarks/decoder_floor.py, so both measure the same bytes)."""
    return Execution(
        exec_id=f"0000e0d5.6770a1b2.01.{i:06d}", order_ref="run-7f3c-ord-0001", order_id=501,
        perm_id=1_800_000_001, client_id=1, account="DU1234567", contract=CONTRACT, side="BOT",
        shares=1.0, price=190.25 + i / 100, cum_qty=float(i + 1), avg_price=190.25,
        time=START + dt.timedelta(milliseconds=i), commission=0.35, venue="ISLAND")


def backlog(frames: int) -> bytes:
    return b"".join(messages.execution_data(-1, sample_execution(i)) for i in range(frames))


class BacklogSocket:
    """A socket holding the whole backlog: each recv() returns up to 4 KB of it, then b"" (closed)."""

    def __init__(self, data: bytes) -> None:
        self._data = memoryview(data)
        self._at = 0

    def recv(self, size: int) -> bytes:
        size = min(size, READ)
        chunk = self._data[self._at : self._at + size].tobytes()
        self._at += len(chunk)
        return chunk

    def close(self) -> None:
        pass


def run_in_memory(reader: Reader, data: bytes) -> tuple[float, list[bytes]]:
    conn = Connection("127.0.0.1", 0)
    conn.socket = BacklogSocket(data)
    out: queue.Queue[bytes] = queue.Queue()
    started = time.perf_counter()
    reader(conn, out).run()  # the thread's body, on this thread: nothing else competes
    return time.perf_counter() - started, list(out.queue)


def run_over_tcp(reader: Reader, data: bytes) -> tuple[float, list[bytes]]:
    listener = socket.create_server(("127.0.0.1", 0))
    sender_side: list[socket.socket] = []

    def send() -> None:
        peer, _ = listener.accept()
        sender_side.append(peer)
        peer.sendall(data)
        peer.shutdown(socket.SHUT_WR)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    conn = Connection("127.0.0.1", listener.getsockname()[1])
    conn.connect()  # as EClient.connect does: connected, with its 1 s timeout
    assert conn.socket is not None
    out: queue.Queue[bytes] = queue.Queue()
    started = time.perf_counter()
    reader(conn, out).run()
    elapsed = time.perf_counter() - started
    sender.join(10)
    for peer in sender_side:
        peer.close()
    listener.close()
    return elapsed, list(out.queue)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, nargs="+", default=[5_000, 20_000, 50_000])
    parser.add_argument("--tcp", action="store_true", help="deliver over loopback TCP instead of in memory")
    args = parser.parse_args()
    run = run_over_tcp if args.tcp else run_in_memory

    print(f"{'frames':>8} {'MB':>6} | {'stock s':>8} {'stock msg/s':>12} | {'ours s':>7} {'ours msg/s':>11} | ratio")
    for frames in args.frames:
        data = backlog(frames)
        stock_seconds, stock = run(EReader, data)
        our_seconds, ours = run(LinearReader, data)
        if ours != stock or len(ours) != frames:
            print(f"{frames}: the readers disagree ({len(stock)} stock, {len(ours)} ours)", file=sys.stderr)
            return 1
        print(f"{frames:>8,} {len(data) / 1e6:>6.1f} | {stock_seconds:>8.2f} {frames / stock_seconds:>12,.0f} "
              f"| {our_seconds:>7.3f} {frames / our_seconds:>11,.0f} | {stock_seconds / our_seconds:>5.0f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
