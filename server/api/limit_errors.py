"""The gRPC answer to a run refused by the pre-trade limits: FAILED_PRECONDITION (RESOURCE_EXHAUSTED
for the counts that pass again later) with a PreconditionFailure naming each field and the setting
that refused it, bounded like every other error (see errors.py)."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from execgw.server.api.errors import MAX_DESCRIPTION, MAX_FIELD, MAX_LISTED_VIOLATIONS, MAX_MESSAGE, bounded
from execgw.server.engine.limits import LimitBreached

NOTHING_DONE = "nothing was written or sent"


async def abort_limit_breached(context: grpc.aio.ServicerContext, breached: LimitBreached) -> None:
    code = grpc.StatusCode.RESOURCE_EXHAUSTED if breached.exhausted else grpc.StatusCode.FAILED_PRECONDITION
    listed = breached.breaches[:MAX_LISTED_VIOLATIONS]
    details = error_details_pb2.PreconditionFailure(violations=[
        error_details_pb2.PreconditionFailure.Violation(
            # `type` names the setting: a caller can tell which limit to ask the operator about.
            type=bounded(b.limit, MAX_FIELD), subject=bounded(b.subject, MAX_FIELD),
            description=bounded(b.description, MAX_DESCRIPTION),
        )
        for b in listed
    ])
    more = len(breached.breaches) - len(listed)
    summary = "; ".join(f"{b.subject} ({b.limit}): {b.description}" for b in listed)
    if more:
        summary += f"; {more} more"
    tail = f"; {NOTHING_DONE}"
    message = "refused by this gateway's limits: " + summary
    if len(message) + len(tail) > MAX_MESSAGE:
        message = bounded(message, MAX_MESSAGE - len(tail))
    packed = any_pb2.Any()
    packed.Pack(details)
    status = status_pb2.Status(code=code.value[0], message=bounded(message + tail, MAX_MESSAGE), details=[packed])
    await context.abort_with_status(rpc_status.to_status(status))
