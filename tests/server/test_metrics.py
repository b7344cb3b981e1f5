"""Prometheus metrics end to end: a gateway with metrics on a free loopback port, runs through gRPC
against the simulator, the port scraped over HTTP and read with prometheus_client's own parser;
counts checked against the run, the database and the watcher's stream. Off by default; a
non-loopback metrics address refused unless `metrics_allow_remote` says otherwise."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from execgw.server.api.bind_guard import RemoteBindRefused
from execgw.server.app import Gateway
from execgw.server.config import Settings
from execgw.server.embedded import GatewayThread
from execgw.server.metrics.exposition import THREAD_NAME, MetricsPortUnavailable, check_metrics_bind
from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb

EXECGW = Path(sys.executable).parent / "execgw"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def total(samples: Samples, name: str) -> float:
    """A sample summed over its labels (e.g. a histogram's count over `delivery`)."""
    return sum(v for (n, _labels), v in samples.items() if n == name)


def metrics_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == THREAD_NAME]


def test_metrics_count_runs_orders_fills_and_watchers_as_they_happened(start_gateway, eventually):
    scenario = {"symbols": {"IBM": {"outcome": "rest"}, "TSLA": {"outcome": "reject"}}}
    live = start_gateway(scenario, metrics_listen="127.0.0.1:0")
    # Another gateway in the same process (and database, so under a name of its own): it counts
    # only its own (a registry each, never the global one).
    other = start_gateway(metrics_listen="127.0.0.1:0", gateway_name="other")
    port, other_port = live.gateway.gateway.metrics_port, other.gateway.gateway.metrics_port
    assert port and other_port and port != other_port

    before = scrape(port)
    assert value(before, "execgw_ib_connected", mode="paper") == 1
    assert value(before, "execgw_ib_taking_orders", mode="paper") == 1
    assert value(before, "execgw_ib_connections_total", mode="paper") == 1
    assert value(before, "execgw_orders_submitted_total", mode="paper") == 0
    assert value(before, "execgw_watch_streams") == 0

    run, events = live.run_to_end(live.order("a", "AAPL"), live.order("b", "MSFT", side="SELL"),
                                  live.order("c", "AAPL", quantity=5))
    assert run.status == pb.RUN_STATUS_SUCCESS
    fills = live.fills(run.run_id)
    kinds = [event.WhichOneof("event") for event in events]
    after = scrape(port)
    assert value(after, "execgw_orders_submitted_total", mode="paper") == 3
    assert value(after, "execgw_orders_filled_total", mode="paper") == 3
    assert value(after, "execgw_orders_rejected_total", mode="paper") == 0
    assert value(after, "execgw_orders_cancelled_total", mode="paper") == 0
    assert value(after, "execgw_executions_stored_total", mode="paper") == len(fills) == kinds.count("fill") >= 3
    with_commission = [f for f in fills if f.commission is not None]
    assert value(after, "execgw_commissions_stored_total", mode="paper") == len(with_commission) == len(fills)
    # Every event the watcher received was counted once, live or replayed.
    assert total(after, "execgw_watch_delivery_seconds_count") == len(events)
    assert value(after, "execgw_ib_report_commit_seconds_count") > 0
    assert value(after, "execgw_writer_batch_reports_count") > 0  # every batch the writer took
    # Each committed transaction's three legs, counted together; the run's own transactions among them.
    legs = [value(after, "execgw_writer_transaction_seconds_count", leg=leg) for leg in ("apply", "statements", "commit")]
    assert legs[0] == legs[1] == legs[2] > value(before, "execgw_writer_transaction_seconds_count", leg="commit")
    assert value(after, "execgw_writer_transaction_seconds_sum", leg="commit") > 0
    assert value(after, "execgw_reconciliations_total", mode="paper", scope="full") >= 1
    assert value(after, "execgw_reconciliations_total", mode="paper", scope="run_end") >= 1
    assert total(after, "execgw_reconciliations_failed_total") == 0
    assert value(after, "execgw_pacing_wait_seconds_count", mode="paper") >= 3
    assert value(after, "execgw_database_ok") == 1 and value(after, "execgw_database_outages_total") == 0
    assert value(after, "execgw_reports_held") == 0 and value(after, "execgw_accepting_runs") == 1
    assert value(after, "execgw_reports_poison_total") == 0
    assert value(after, "execgw_ib_connections_total", mode="paper") == 1  # no reconnect

    # A run that stays open (IBM rests) keeps its watcher's stream open; TSLA is refused by IB.
    waiting = live.submit(live.order("rests", "IBM"), live.order("refused", "TSLA"), deadline=30).run
    stream = live.stub.WatchRun(pb.WatchRunRequest(run_id=waiting.run_id), timeout=30)
    next(stream)  # the stream holds its place from before its first event until it ends
    assert value(scrape(port), "execgw_watch_streams") == 1
    eventually(lambda: value(scrape(port), "execgw_orders_rejected_total", mode="paper") == 1, 10, "TSLA refused")
    live.stub.CancelRun(pb.CancelRunRequest(run_id=waiting.run_id), timeout=30)
    assert list(stream)[-1].event.run_status.final  # ended by the run's final status
    eventually(lambda: value(scrape(port), "execgw_watch_streams") == 0, 5, "the watcher's place given back")
    final = scrape(port)
    assert value(final, "execgw_orders_submitted_total", mode="paper") == 5
    assert value(final, "execgw_orders_filled_total", mode="paper") == 3
    assert value(final, "execgw_orders_rejected_total", mode="paper") == 1
    assert value(final, "execgw_orders_cancelled_total", mode="paper") == 1

    untouched = scrape(other_port)
    assert value(untouched, "execgw_ib_connected", mode="paper") == 1
    assert value(untouched, "execgw_orders_submitted_total", mode="paper") == 0
    assert total(untouched, "execgw_watch_delivery_seconds_count") == 0


def test_a_run_resumed_after_a_restart_counts_under_its_mode_from_the_database(start_gateway, eventually):
    """No SubmitRun names it to the new gateway: its mode is read from the database."""
    sim = SimulatorThread(scenario=Scenario.from_dict({"symbols": {"IBM": {"outcome": "rest"}}}))
    sim.start()
    first = start_gateway(sim=sim)
    run_id = first.submit(first.order("rests", "IBM"), deadline=3).run.run_id
    eventually(lambda: first.orders(run_id)[0].status == "SUBMITTED", 10, "IBM working at IB")
    first.gateway.stop()
    second = start_gateway(sim=sim, metrics_listen="127.0.0.1:0")
    port = second.gateway.gateway.metrics_port
    # The resumed run's deadline cancels IBM; counted once the mode is read (2 s after it is seen).
    eventually(lambda: value(scrape(port), "execgw_orders_cancelled_total", mode="paper") == 1, 15,
               "the resumed run's cancel counted under paper")
    assert not [labels for (name, labels) in scrape(port) if ("mode", "unknown") in labels]


def test_metrics_are_off_by_default(tmp_path):
    assert Settings().metrics_listen is None
    with GatewayThread(database_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}") as running:
        assert running.gateway.metrics is None and running.gateway.metrics_port == 0
        assert metrics_threads() == []


def test_the_metrics_port_closes_with_the_gateway(tmp_path):
    running = GatewayThread(database_url=f"sqlite:///{tmp_path / 'gw.sqlite3'}", metrics_listen="127.0.0.1:0").start()
    port = running.gateway.metrics_port
    try:
        assert value(scrape(port), "execgw_ib_connected", mode="paper") == 1
        assert len(metrics_threads()) == 1
    finally:
        running.stop()
    assert metrics_threads() == []
    with pytest.raises(OSError):  # refused: nothing listens there any more
        scrape(port)


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "[::1]", "localhost"])
def test_metrics_on_loopback_need_no_override(host, caplog):
    check_metrics_bind(Settings(metrics_listen=f"{host}:9464"))
    assert "metrics" not in caplog.text


def test_a_remote_metrics_address_is_refused_unless_metrics_allow_remote_says_so(tmp_path, caplog):
    remote = Settings(database_url=f"sqlite:///{tmp_path / 'never.sqlite3'}", listen="127.0.0.1:0",
                      metrics_listen="0.0.0.0:0")
    gateway = Gateway(remote)
    with pytest.raises(RemoteBindRefused, match="--metrics-allow-remote"):
        asyncio.run(gateway.start())
    assert gateway.metrics_port == 0 and metrics_threads() == []
    assert not (tmp_path / "never.sqlite3").exists()  # refused before anything started

    check_metrics_bind(remote.model_copy(update={"metrics_allow_remote": True}))
    assert "metrics on 0.0.0.0:0 are readable by anyone who reaches it" in caplog.text


def test_serve_refuses_remote_metrics_even_with_insecure_allow_remote(tmp_path):
    """insecure_allow_remote accepts an unprotected order port; it says nothing about metrics."""
    database = tmp_path / "never.sqlite3"
    refused = subprocess.run(
        [str(EXECGW), "serve", "--listen", "127.0.0.1:0", "--insecure-allow-remote",
         "--metrics-listen", "192.0.2.1:9464", "--database-url", f"sqlite:///{database}"],
        cwd=tmp_path, capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")},
    )
    assert refused.returncode == 2, refused.stderr
    assert "refusing to serve metrics on 192.0.2.1:9464" in refused.stderr
    assert "--metrics-allow-remote" in refused.stderr
    assert not database.exists()


def test_a_metrics_port_in_use_stops_start_up_naming_it(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        listen = f"127.0.0.1:{taken.getsockname()[1]}"
        gateway = Gateway(Settings(database_url=f"sqlite:///{tmp_path / 'never.sqlite3'}", listen="127.0.0.1:0",
                                   metrics_listen=listen))
        with pytest.raises(MetricsPortUnavailable, match=f"cannot serve metrics on {listen} \\(metrics_listen\\)"):
            asyncio.run(gateway.start())
    assert not (tmp_path / "never.sqlite3").exists()  # before the database or IB were touched
