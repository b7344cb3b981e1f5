"""`execgw serve` as a real process the fault tests start, kill and start again on one database
and one simulator (test_gateway_restarts.py, test_two_gateway_processes.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from execgw.v1 import execution_pb2_grpc as pb_grpc

EXECGW = Path(sys.executable).parent / "execgw"
# Short waits, so a restarted gateway finishes its runs in seconds.
QUICK = {"EXECGW_CANCEL_WAIT_SECONDS": "1.5", "EXECGW_RECONCILE_TIMEOUT_SECONDS": "5",
         "EXECGW_COMMISSION_GRACE_SECONDS": "1"}


class GatewayProcess:
    """One gateway; `env` (EXECGW_* settings) is given at every start, on top of QUICK and this
    process's environment without its EXECGW_* variables. Output appended to `log_path`."""

    def __init__(self, database_url: str, sim_port: int, log_path: Path, free_port: Callable[[], int],
                 **env: str) -> None:
        self.database_url = database_url
        self.sim_port = sim_port
        self.log_path = log_path
        self.env = env
        self._free_port = free_port
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def name(self) -> str:
        return self.env.get("EXECGW_GATEWAY_NAME", "execgw")

    def spawn(self, **env: str) -> subprocess.Popen[bytes]:
        """Starts it on a new port, without waiting."""
        self.port = self._free_port()
        environment = {**{k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")},
                       **QUICK, **self.env, **env}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(EXECGW), "serve", "--listen", f"127.0.0.1:{self.port}", "--database-url", self.database_url,
                 "--ib-paper", f"127.0.0.1:{self.sim_port}"],
                stdout=log, stderr=subprocess.STDOUT, env=environment,
            )
        return self.process

    def start(self, **env: str) -> GatewayProcess:
        """Starts it and waits until it is connected to IB."""
        process = self.spawn(**env)
        deadline = time.monotonic() + 30
        while not self._ib_connected():
            assert process.poll() is None, self.log_path.read_text()
            assert time.monotonic() < deadline, f"gateway {self.name} did not connect to IB"
            time.sleep(0.1)
        return self

    def _ib_connected(self) -> bool:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{self.port}") as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service="execgw.ib.paper"), timeout=1)
                return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def channel(self) -> grpc.Channel:
        return grpc.insecure_channel(f"127.0.0.1:{self.port}")

    def stub(self) -> tuple[grpc.Channel, pb_grpc.ExecutionServiceStub]:
        channel = self.channel()
        return channel, pb_grpc.ExecutionServiceStub(channel)

    def kill(self, sig: int = signal.SIGKILL, timeout: float = 20) -> int:
        """Sends `sig` and returns the exit status."""
        assert self.process is not None
        self.process.send_signal(sig)
        return self.process.wait(timeout)

    def log_size(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        return self.log_path.read_bytes()[offset:].decode(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
