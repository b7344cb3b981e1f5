"""`execgw serve` as a person runs it: embedded defaults from an empty folder (SQLite, by
definition), a clean stop on Ctrl-C; and a second gateway with a client id already in use (IB
error 326) retrying until free, on SQLite and MariaDB (the `database_url` fixture)."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from execgw.server.config import Settings
from execgw.server.embedded import GatewayThread
from execgw.sim.thread import SimulatorThread

EXECGW = Path(sys.executable).parent / "execgw"
CLIENT_ID_IN_USE = re.compile(
    r'^ts=\S+ level=WARNING logger=execgw\.server\.ib\.session msg="IB paper \(127\.0\.0\.1:\d+\) connect attempt \d+ failed '
    r"\(326 Unable to connect as the client id is already in use\. Retry with a unique client id\.\)", re.MULTILINE)




def health(port: int, service: str) -> int | None:
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            return health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=1).status
    except grpc.RpcError:
        return None




def test_serve_with_no_configuration_uses_the_embedded_defaults_and_stops_on_ctrl_c(tmp_path, free_port, eventually,
                                                                                    clean_environment):
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        process = subprocess.Popen([str(EXECGW), "serve", "--listen", f"127.0.0.1:{port}"], cwd=tmp_path,
                                   stdout=out, stderr=subprocess.STDOUT, env=clean_environment())
    try:
        serving = health_pb2.HealthCheckResponse.SERVING
        eventually(lambda: health(port, "execgw.ib.paper") == serving, 30, "the built-in simulator never connected")
        assert (tmp_path / "execgw-data" / "execgw.sqlite3").is_file()
        process.send_signal(signal.SIGINT)
        assert process.wait(20) == 0
    finally:
        if process.poll() is None:
            process.kill()
    text = log.read_text()
    assert "built-in TWS simulator" in text and "execgw stopped" in text


def test_a_client_id_in_use_is_reported_and_retried_until_it_is_free(tmp_path, free_port, eventually, database_url,
                                                                      clean_environment):
    sim = SimulatorThread()
    sim.start()
    first = GatewayThread(Settings(database_url=f"sqlite:///{tmp_path}/a.sqlite3", listen="127.0.0.1:0",
                                   ib_paper=f"127.0.0.1:{sim.port}", ib_client_id=5)).start()
    port = free_port()
    log = tmp_path / "second.log"
    with log.open("wb") as out:
        second = subprocess.Popen(
            [str(EXECGW), "serve", "--listen", f"127.0.0.1:{port}", "--ib-paper", f"127.0.0.1:{sim.port}",
             "--ib-client-id", "5", "--database-url", database_url],
            stdout=out, stderr=subprocess.STDOUT, env=clean_environment())
    try:
        # IB's 326 reported, and the connection retried: a second attempt failed with it too.
        eventually(lambda: len(CLIENT_ID_IN_USE.findall(log.read_text())) >= 2, 30,
                   "error 326 was not reported and retried")
        assert health(port, "execgw.ib.paper") == health_pb2.HealthCheckResponse.NOT_SERVING
        first.stop()  # the client id becomes free
        eventually(lambda: health(port, "execgw.ib.paper") == health_pb2.HealthCheckResponse.SERVING, 60,
                 "the second gateway did not take over the client id")
    finally:
        second.kill()
        second.wait(10)
        first.stop()
        sim.stop()
