"""gRPC error statuses with google.rpc details, so callers can tell which field was wrong.

An error travels in the response trailers: ``grpc-message`` and ``grpc-status-details-bin`` (the
Status again, message included, base64). gRPC clients refuse trailers above a soft limit of
8 KiB by default (RESOURCE_EXHAUSTED "received metadata size exceeds soft limit"), and then the
caller learns nothing. So every error is bounded: at most ``MAX_LISTED_VIOLATIONS`` violations
within ``DETAILS_BUDGET`` bytes, then one entry saying how many more there are; descriptions,
fields and the message are cut to fixed lengths and kept ASCII (anything else would be
percent-encoded, three bytes a character). The worst case stays under 6 KiB of trailers.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from google.protobuf import any_pb2
from google.protobuf.message import DecodeError
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from execgw.server.engine.validation import Violation

MAX_LISTED_VIOLATIONS = 20
DETAILS_BUDGET = 2048  # bytes of the serialized BadRequest, the "more" entry included
_MORE_RESERVE = 160  # bytes kept for that entry
MAX_FIELD = 100
MAX_DESCRIPTION = 400
# A '%' is sent as "%25", so 600 characters are at most 1,800 bytes of grpc-message.
MAX_MESSAGE = 600
MORE_FIELD = "request"
_CUT = "..."


def bounded(text: str, limit: int) -> str:
    """``text`` as ASCII (escapes for anything else), cut to ``limit`` characters."""
    safe = text.encode("ascii", "backslashreplace").decode("ascii")
    if len(safe) <= limit:
        return safe
    return safe[: limit - len(_CUT)] + _CUT


def bad_request_details(violations: list[Violation]) -> tuple[error_details_pb2.BadRequest, str]:
    """The BadRequest and the status message for ``violations``, both within the bounds above."""
    details = error_details_pb2.BadRequest()
    for violation in violations[:MAX_LISTED_VIOLATIONS]:
        entry = error_details_pb2.BadRequest.FieldViolation(
            field=bounded(violation.field, MAX_FIELD), description=bounded(violation.description, MAX_DESCRIPTION)
        )
        if details.ByteSize() + entry.ByteSize() + 4 > DETAILS_BUDGET - _MORE_RESERVE:
            break
        details.field_violations.append(entry)
    unlisted = len(violations) - len(details.field_violations)
    if unlisted:
        details.field_violations.append(
            error_details_pb2.BadRequest.FieldViolation(field=MORE_FIELD, description=_more(unlisted))
        )
    message = "invalid request: " + "; ".join(f"{v.field}: {v.description}" for v in details.field_violations)
    if len(message) > MAX_MESSAGE:
        tail = f"... ({len(violations)} violation(s) in all; see the BadRequest details)"
        message = message[: MAX_MESSAGE - len(tail)] + tail
    return details, message


def _more(count: int) -> str:
    return f"{count} more violation(s) not listed; fix the ones above and send again to see them"


async def abort_bad_request(context: grpc.aio.ServicerContext, violations: list[Violation]) -> None:
    details, message = bad_request_details(violations)
    packed = any_pb2.Any()
    packed.Pack(details)
    status = status_pb2.Status(code=code_pb2.INVALID_ARGUMENT, message=message, details=[packed])
    await context.abort_with_status(rpc_status.to_status(status))


async def abort_precondition(
    context: grpc.aio.ServicerContext, code: grpc.StatusCode, subject: str, description: str, message: str
) -> None:
    """FAILED_PRECONDITION / ALREADY_EXISTS with a PreconditionFailure naming the subject."""
    details = error_details_pb2.PreconditionFailure(
        violations=[
            error_details_pb2.PreconditionFailure.Violation(
                type=code.name, subject=bounded(subject, MAX_FIELD), description=bounded(description, MAX_DESCRIPTION)
            )
        ]
    )
    packed = any_pb2.Any()
    packed.Pack(details)
    status = status_pb2.Status(code=code.value[0], message=bounded(message, MAX_MESSAGE), details=[packed])
    await context.abort_with_status(rpc_status.to_status(status))


class RequestDecoding(grpc.aio.ServerInterceptor):
    """A request that is not the method's message (bad UTF-8 in a string field, a corrupt wire
    format) is INVALID_ARGUMENT naming `request`. grpc.aio decodes before any handler runs and
    answers its DecodeError with UNKNOWN, which says "the server broke" (found by
    tests/server/api/test_fuzz.py). Installed inside the authentication interceptor, so a caller
    without a credential is still UNAUTHENTICATED first. Streamed requests are left as they are."""

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        if handler is None or handler.request_streaming or handler.request_deserializer is None:
            return handler
        decode = handler.request_deserializer
        behavior = handler.unary_unary or handler.unary_stream
        method = handler_call_details.method  # type: ignore[attr-defined]

        async def decoded(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
            try:
                return decode(raw)
            except DecodeError as exc:
                await abort_bad_request(context, [Violation("request", f"not a request {method} accepts: {exc}")])
                raise

        if inspect.isasyncgenfunction(behavior):
            async def streaming(raw: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                async for response in behavior(await decoded(raw, context), context):
                    yield response
            wrapped: Callable[..., Any] = streaming
        else:
            async def unary(raw: bytes, context: grpc.aio.ServicerContext) -> Any:
                return await behavior(await decoded(raw, context), context)
            wrapped = unary
        make = grpc.unary_stream_rpc_method_handler if handler.response_streaming else grpc.unary_unary_rpc_method_handler
        return make(wrapped, None, handler.response_serializer)
