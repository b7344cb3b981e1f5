"""Connecting to a TWS that does not answer the API handshake.

An untrusted IP, or a TWS whose "accept incoming API connection?" dialog nobody clicks, accepts
the TCP connection, reads the client's `API\\0v100..157` and never answers. ibapi's blocking
`EClient.connect` then waits for the server version forever (its 1 s socket timeout only loops).
The session must bound that wait, free the thread that ran it, log the attempt and try again.

Loopback only; each test bounded by pytest-timeout on top of its own deadlines.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import sys
import threading
import time

import pytest

from execgw.server.ib import events as ev
from execgw.server.ib.endpoint import Endpoint
from execgw.server.ib.session import IBSession
from execgw.sim.thread import SimulatorThread

SESSION_LOGGER = "execgw.server.ib.session"


class SilentTws:
    """Accepts, reads whatever the client sends, never writes: TWS waiting on its dialog."""

    def __init__(self) -> None:
        self.attempts = 0
        self.open_connections = 0
        self.received = b""
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return self._server.sockets[0].getsockname()[1]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.attempts += 1
        self.open_connections += 1
        self._writers.append(writer)
        try:
            while chunk := await reader.read(4096):
                self.received += chunk
        except ConnectionError:
            pass
        finally:
            self.open_connections -= 1
            writer.close()

    async def close(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await self._server.wait_closed()


def _threads_inside_ibapi_connect() -> list[str]:
    """Names of threads currently executing ibapi's `EClient.connect` (a blocked handshake)."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    stuck = []
    for ident, frame in sys._current_frames().items():
        while frame is not None:
            code = frame.f_code
            if code.co_name == "connect" and code.co_filename.replace("\\", "/").endswith("ibapi/client.py"):
                stuck.append(names.get(ident, str(ident)))
                break
            frame = frame.f_back
    return stuck


async def _until(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} not met within {timeout}s"
        await asyncio.sleep(0.02)


@pytest.mark.timeout(60)
def test_a_silent_handshake_times_out_and_is_retried(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger=SESSION_LOGGER)
    events: list[ev.IbEvent] = []

    async def scenario() -> tuple[float, float]:
        tws = SilentTws()
        port = await tws.start()
        session = IBSession(
            Endpoint("paper", "127.0.0.1", port, 7), events.append,
            connect_timeout=0.5, reconnect_initial=0.05, reconnect_max=0.2,
        )
        started = time.monotonic()
        session.start()
        try:
            # Two attempts need two handshake timeouts (0.5 s each) and a short backoff.
            await _until(lambda: tws.attempts >= 3, timeout=8, what="three connection attempts")
            took = time.monotonic() - started
            assert tws.received.startswith(b"API\0"), "the client really began the handshake"
            assert not session.ready
            assert not await session.wait_ready(0.2)
        finally:
            stopping = time.monotonic()
            await session.stop()
            stop_took = time.monotonic() - stopping
        # Every socket the session opened is closed: nothing keeps TWS's dialog queue growing.
        await _until(lambda: tws.open_connections == 0, timeout=3, what="every connection closed")
        await tws.close()
        return took, stop_took

    took, stop_took = asyncio.run(asyncio.wait_for(scenario(), 30))

    assert took < 8
    assert stop_took < 2.0, f"stop() took {stop_took:.1f}s"
    assert _threads_inside_ibapi_connect() == [], "a thread is still blocked in ibapi's connect"
    failures = [r.getMessage() for r in caplog.records
                if r.name == SESSION_LOGGER and "connect attempt" in r.getMessage()]
    assert len(failures) >= 2, failures
    assert all("did not answer the API handshake within 0.5s" in m for m in failures), failures
    assert "trusted IPs" in failures[0]
    assert not any(isinstance(e, ev.Connected) for e in events)


@pytest.mark.timeout(60)
def test_the_session_connects_once_the_silent_tws_starts_answering(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=SESSION_LOGGER)
    events: list[ev.IbEvent] = []
    sim: SimulatorThread | None = None

    async def scenario() -> None:
        nonlocal sim
        tws = SilentTws()
        port = await tws.start()
        session = IBSession(
            Endpoint("paper", "127.0.0.1", port, 7), events.append,
            connect_timeout=0.5, reconnect_initial=0.05, reconnect_max=0.2,
        )
        session.start()
        try:
            await _until(lambda: tws.attempts >= 2, timeout=8, what="two silent attempts")
            assert not session.ready
            # Someone clicks "accept" (or trusts our IP): a real TWS answers on the same port.
            await tws.close()
            sim = SimulatorThread(accounts=["DU1234567"], port=port)
            await asyncio.get_running_loop().run_in_executor(None, sim.start)
            assert await session.wait_ready(10), "the session never connected to the answering TWS"
            assert session.accounts == ("DU1234567",)
            # ready is set as nextValidId arrives; the "connected" line follows on the next step.
            await _until(lambda: any("connected to" in r.getMessage() for r in caplog.records
                                     if r.name == SESSION_LOGGER), timeout=5, what="the connected log line")
        finally:
            await session.stop()

    try:
        asyncio.run(asyncio.wait_for(scenario(), 40))
    finally:
        if sim is not None:
            sim.stop()

    assert [e for e in events if isinstance(e, ev.Connected)], "no Connected event"
    assert _threads_inside_ibapi_connect() == []


@pytest.mark.timeout(60)
def test_an_unanswered_tcp_connect_is_bounded_too(caplog: pytest.LogCaptureFixture) -> None:
    """A host that drops our SYNs (down, or a firewall) hangs ibapi's socket.connect, which has no
    timeout of its own. Loopback stand-in: a listener whose accept queue is full drops SYNs."""
    caplog.set_level(logging.WARNING, logger=SESSION_LOGGER)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    fillers = []
    try:
        for _ in range(3):
            filler = socket.socket()
            filler.setblocking(False)
            filler.connect_ex(("127.0.0.1", port))
            fillers.append(filler)
        probe = socket.socket()
        probe.settimeout(0.5)
        try:
            probe.connect(("127.0.0.1", port))
            pytest.skip("this kernel completes connects past a full accept queue: no stand-in for a dropped SYN")
        except TimeoutError:
            pass
        finally:
            probe.close()

        async def scenario() -> float:
            session = IBSession(Endpoint("paper", "127.0.0.1", port, 7), lambda event: None,
                                connect_timeout=0.5, reconnect_initial=0.05, reconnect_max=0.2)
            session.start()
            try:
                await _until(lambda: sum("connect attempt" in r.getMessage() for r in caplog.records) >= 2,
                             timeout=8, what="two failed attempts")
                assert not session.ready
            finally:
                stopping = time.monotonic()
                await session.stop()
            return time.monotonic() - stopping

        stop_took = asyncio.run(asyncio.wait_for(scenario(), 30))
    finally:
        for sock in [*fillers, listener]:
            sock.close()

    assert stop_took < 2.0
    assert _threads_inside_ibapi_connect() == []
    failures = [r.getMessage() for r in caplog.records if "connect attempt" in r.getMessage()]
    assert all("TCP connect to 127.0.0.1" in m and "did not complete within 0.5s" in m for m in failures), failures
