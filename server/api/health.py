"""The standard gRPC health service, with the reason a service is not serving.

`grpc.health.v1` answers only SERVING / NOT_SERVING. An operator whose IB endpoint is down wants
to know why (not connected, IB cut off, TWS's Read-Only API setting), so Check also sends the
reason as the trailing metadata `execgw-reason` (grpcurl -v shows it). Load balancers and
Kubernetes probes read the status alone and are unaffected.
"""

from __future__ import annotations

import grpc
from grpc_health.v1 import health, health_pb2

REASON_KEY = "execgw-reason"


class HealthWithReasons(health.aio.HealthServicer):
    def __init__(self) -> None:
        super().__init__()
        self._reasons: dict[str, str] = {}

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
        reason = self._reasons.get(request.service)
        if reason:
            # Metadata values are ASCII header text: IB's messages may carry newlines.
            context.set_trailing_metadata(((REASON_KEY, " ".join(reason.split())[:1000]),))
        return await super().Check(request, context)
