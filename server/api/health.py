"""The standard gRPC health service, with the reason a service is not serving.

`grpc.health.v1` answers only SERVING / NOT_SERVING. An operator whose IB endpoint is down wants
to know why (not connected, IB cut off, TWS's Read-Only API setting), so Check also sends the
reason as the trailing metadata `execgw-reason` (grpcurl -v shows it). Load balancers and
Kubernetes probes read the status alone and are unaffected.

Some states are only learnt by asking: a database that went away while the gateway had nothing
to write says nothing until it is next used. A service with a probe is asked again when Check
finds its answer older than the probe's interval, so a load balancer or a Kubernetes probe polling
Check sees such an outage within its own polling period; one probe at a time, however many ask.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import grpc
from grpc_health.v1 import health, health_pb2

REASON_KEY = "execgw-reason"

# A probe answers (serving, reason) and bounds its own time (a hung database: the driver's timeout).
Probe = Callable[[], Awaitable[tuple[bool, str]]]
# How long Check waits for a probe before answering with what is known: probes (Kubernetes', a
# load balancer's) time out in about a second, and a refused connection is found well within this.
ANSWER_WITHIN = 0.5


@dataclass
class _Probing:
    probe: Probe
    interval: float
    asked_at: float = float("-inf")
    running: asyncio.Future[None] | None = None


class HealthWithReasons(health.aio.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self._reasons: dict[str, str] = {}
        self._probes: dict[str, _Probing] = {}

    def add_probe(self, service: str, probe: Probe, interval: float) -> None:
        """Check of `service` first runs `probe` when its last answer is older than `interval` s."""
        self._probes[service] = _Probing(probe, interval)

    async def set_with_reason(self, service: str, serving: bool, reason: str = "") -> None:
        status = health_pb2.HealthCheckResponse.SERVING if serving else health_pb2.HealthCheckResponse.NOT_SERVING
        if reason:
            self._reasons[service] = reason
        else:
            self._reasons.pop(service, None)
        await self.set(service, status)

    async def Check(
        self, request: health_pb2.HealthCheckRequest, context: grpc.aio.ServicerContext
    ) -> health_pb2.HealthCheckResponse:
        probing = self._probes.get(request.service)
        if probing is not None:
            await self._probe(request.service, probing)
        reason = self._reasons.get(request.service)
        if reason:
            # Metadata values are ASCII header text: IB's messages may carry newlines.
            context.set_trailing_metadata(((REASON_KEY, " ".join(reason.split())[:1000]),))
        return await super().Check(request, context)

    async def _probe(self, service: str, probing: _Probing) -> None:
        if probing.running is None:
            if time.monotonic() - probing.asked_at < probing.interval:
                return
            probing.asked_at = time.monotonic()
            probing.running = asyncio.ensure_future(self._run_probe(service, probing))
        try:
            # Shielded: a Check that stops waiting leaves the probe to finish for the next one.
            await asyncio.wait_for(asyncio.shield(probing.running), ANSWER_WITHIN)
        except TimeoutError:
            pass  # answered with what is known; the probe's finding is set when it comes

    async def _run_probe(self, service: str, probing: _Probing) -> None:
        try:
            serving, reason = await probing.probe()
            await self.set_with_reason(service, serving, reason)
        finally:
            probing.running = None
            probing.asked_at = time.monotonic()
