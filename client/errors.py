"""The client's exceptions: every gRPC failure of the gateway becomes one of these.

The tree, and the gRPC status each one stands for::

    ExecGwError            any failure; .code (grpc.StatusCode), .message, .violations
    ├── InvalidRequest     INVALID_ARGUMENT: the request was refused as a whole, nothing was written
    │                      or sent. .violations lists (field, description) pairs from the server's
    │                      google.rpc.BadRequest, e.g. ("orders[1].quantity", "must be positive").
    ├── Conflict           ALREADY_EXISTS: a client_order_id is already used by a different order.
    │                      .violations holds (subject, description) from the PreconditionFailure,
    │                      the subject being "client_order_id:<id>".
    ├── NotFound           NOT_FOUND: no such run.
    ├── Unavailable        UNAVAILABLE: the gateway cannot be reached, IB is not connected, or a watch
    │                      stream was ended by a shutdown (the client retries these itself first).
    └── PreconditionFailed FAILED_PRECONDITION: e.g. live trading is not configured on the gateway.

Any other status (DEADLINE_EXCEEDED, INTERNAL, ...) is raised as a plain ExecGwError.
"""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

Violation = tuple[str, str]


class ExecGwError(Exception):
    """A gateway call failed; ``code`` is the gRPC status, ``message`` the server's text."""

    def __init__(self, code: grpc.StatusCode, message: str, violations: list[Violation] | None = None) -> None:
        self.code = code
        self.message = message
        self.violations: list[Violation] = list(violations or [])
        super().__init__(message)

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


class InvalidRequest(ExecGwError):
    """INVALID_ARGUMENT, with the field violations the server named."""


class Conflict(ExecGwError):
    """ALREADY_EXISTS: a client_order_id belongs to another order."""


class NotFound(ExecGwError):
    """NOT_FOUND: the run does not exist."""


class Unavailable(ExecGwError):
    """UNAVAILABLE: gateway unreachable, IB down, or the stream was ended by the gateway."""


class PreconditionFailed(ExecGwError):
    """FAILED_PRECONDITION: the gateway is not set up for the request (e.g. live mode)."""


_BY_CODE: dict[grpc.StatusCode, type[ExecGwError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
    grpc.StatusCode.ALREADY_EXISTS: Conflict,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.UNAVAILABLE: Unavailable,
    grpc.StatusCode.FAILED_PRECONDITION: PreconditionFailed,
}


def translate(error: grpc.RpcError) -> ExecGwError:
    """The ExecGwError for a failed call (a grpc.RpcError that is also a grpc.Call)."""
    code = error.code() if isinstance(error, grpc.Call) else grpc.StatusCode.UNKNOWN
    message = (error.details() if isinstance(error, grpc.Call) else None) or str(error)
    return _BY_CODE.get(code, ExecGwError)(code, message, _violations(error))


def _violations(error: grpc.RpcError) -> list[Violation]:
    if not isinstance(error, grpc.Call):
        return []
    try:
        status = rpc_status.from_call(error)
    except ValueError:
        # The rich status disagrees with the call's own code/message: trust the call, drop details.
        return []
    if status is None:
        return []
    found: list[Violation] = []
    for detail in status.details:
        if detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad_request = error_details_pb2.BadRequest()
            detail.Unpack(bad_request)
            found.extend((v.field, v.description) for v in bad_request.field_violations)
        elif detail.Is(error_details_pb2.PreconditionFailure.DESCRIPTOR):
            failure = error_details_pb2.PreconditionFailure()
            detail.Unpack(failure)
            found.extend((v.subject, v.description) for v in failure.violations)
    return found
