"""gRPC error statuses with google.rpc details, so callers can tell which field was wrong."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from execgw.server.engine.validation import Violation


async def abort_bad_request(context: grpc.aio.ServicerContext, violations: list[Violation]) -> None:
    details = error_details_pb2.BadRequest(
        field_violations=[
            error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
            for v in violations
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(details)
    summary = "; ".join(f"{v.field}: {v.description}" for v in violations)
    status = status_pb2.Status(
        code=code_pb2.INVALID_ARGUMENT, message=f"invalid request: {summary}", details=[packed]
    )
    await context.abort_with_status(rpc_status.to_status(status))


async def abort_precondition(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, subject: str, description: str, message: str
) -> None:
    """FAILED_PRECONDITION / ALREADY_EXISTS with a PreconditionFailure naming the subject."""
    details = error_details_pb2.PreconditionFailure(
        violations=[error_details_pb2.PreconditionFailure.Violation(type=code.name, subject=subject, description=description)]
    )
    packed = any_pb2.Any()
    packed.Pack(details)
    status = status_pb2.Status(code=code.value[0], message=message, details=[packed])
    await context.abort_with_status(rpc_status.to_status(status))
