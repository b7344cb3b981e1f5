"""The thread runner: a simulator usable from synchronous code, stopped cleanly."""

from __future__ import annotations

import socket
import threading

from execgw.sim import SimulatorThread, run_in_thread

from .clients import RawClient


def test_run_in_thread_listens_and_stops_its_thread():
    before = set(threading.enumerate())
    with run_in_thread(accounts=["DU5"]) as sim:
        assert sim.port > 0
        client = RawClient(sim.port).start_api(3)
        assert client.receive() == ["15", "1", "DU5"]
        sim.wait_for_client(3)
        assert sim.connected_clients() == [3]
        client.close()
    assert set(threading.enumerate()) <= before
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", sim.port)) != 0  # nothing listens any more


def test_stop_is_idempotent_and_a_fixed_port_can_be_reused():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = SimulatorThread(port=port)
    assert runner.start() == port
    runner.stop()
    runner.stop()
    with run_in_thread(port=port) as again:
        assert again.port == port
