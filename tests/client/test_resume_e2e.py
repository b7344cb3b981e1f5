"""A watch survives a gateway restart: it resumes from the last sequence it yielded."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from execgw.client import ExecGwClient, Order, RetryPolicy
from execgw.server.embedded import GatewayThread
from execgw.sim import Scenario, SimulatorThread
from execgw.v1 import execution_pb2 as pb

pytestmark = pytest.mark.timeout(90)


def test_watch_resumes_across_a_gateway_restart(tmp_path: Path) -> None:
    simulator = SimulatorThread(scenario=Scenario.from_dict({"symbols": {"REST": {"outcome": "rest"}}}), seed=1)
    simulator.start()
    settings = {"database_url": f"sqlite:///{tmp_path}/gw.sqlite3", "ib_paper": f"127.0.0.1:{simulator.port}"}
    first = GatewayThread(listen="127.0.0.1:0", **settings).start()
    second: GatewayThread | None = None
    try:
        target = first.target
        retry = RetryPolicy(watch_failures=40, initial_backoff=0.05, max_backoff=0.25)
        backoffs: list[float] = []

        def sleep(seconds: float) -> None:
            backoffs.append(seconds)
            time.sleep(seconds)

        with ExecGwClient(target, retry=retry, sleep=sleep) as client:
            run_id = client.submit([Order("rest-1", "REST", "BUY", 10), Order("fill-1", "AAPL", "BUY", 5)]).run_id
            events: list[pb.RunEvent] = []
            working = threading.Event()
            filled = threading.Event()

            def watch() -> None:
                for event in client.watch(run_id):
                    events.append(event)
                    if event.order_status.client_order_id == "rest-1" and \
                            event.order_status.status == pb.ORDER_STATUS_SUBMITTED:
                        working.set()
                    if event.order_status.client_order_id == "fill-1" and \
                            event.order_status.status == pb.ORDER_STATUS_FILLED:
                        filled.set()

            watcher = threading.Thread(target=watch, daemon=True)
            watcher.start()
            # Both orders at IB before the restart (the second leaves a pacing interval after the
            # first): one rests, to be cancelled after it; one is filled.
            assert working.wait(10) and filled.wait(10)
            seen_before_restart = len(events)

            first.stop()  # watch streams end with UNAVAILABLE; the client keeps reconnecting
            second = GatewayThread(listen=target, **settings).start()
            outcome = client.cancel(run_id)
            assert {o.client_order_id: o.status for o in outcome.outcomes}["rest-1"] == pb.ORDER_STATUS_CANCELLED

            watcher.join(30)
            assert not watcher.is_alive()
        sequences = [e.sequence for e in events]
        assert sequences == list(range(1, len(sequences) + 1))  # no gap, no repeat across the restart
        assert len(events) > seen_before_restart
        assert backoffs  # the stream did fail and was reopened
        final = events[-1].run_status
        assert final.final and final.status == pb.RUN_STATUS_PARTIAL
    finally:
        first.stop()
        if second is not None:
            second.stop()
        simulator.stop()
