"""Who is calling, and may they: every RPC but health and reflection needs a caller.

A caller is authenticated by a bearer token (``authorization: Bearer <token>`` metadata) or, over
mTLS, by the name on its verified client certificate; both are looked up in the callers file
(``callers.py``), which the gateway keeps current while it runs (``callers_file.py``). Without a
callers file, and only while the gateway listens on loopback, every call is the implicit caller
"local" (read, paper and admin for paper orders; never live): the embedded default stays usable.

Authentication is an interceptor, so a method added later is refused until a caller is known (fail
closed); what the caller may do is decided in the servicer, which knows the run and its account.
The interceptor hands the caller over in a context variable: grpc.aio runs the interceptors and
the handler of one RPC in one ``contextvars.Context`` made for that RPC.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any

import grpc

from execgw.server.api.bind_guard import is_loopback
from execgw.server.api.callers import LOCAL_CALLER, Caller, Callers, CertificateOfSeveralCallers, Permission
from execgw.server.api.callers_file import CallersFile
from execgw.server.config import Settings, split_host_port

log = logging.getLogger(__name__)

# Reachable without a credential: load balancers probe health, and reflection says only what the
# service looks like (grpcurl, buf curl), never any run.
OPEN_METHOD_PREFIXES = (
    "/grpc.health.v1.Health/",
    "/grpc.reflection.v1alpha.ServerReflection/",
    "/grpc.reflection.v1.ServerReflection/",
)
CERTIFICATE_NAME_KEYS = ("x509_subject_alternative_name", "x509_common_name")
WHAT_IT_ALLOWS = {
    Permission.READ: "needed to read runs: GetRun, ListRuns, WatchRun, and the gateway's status: GetStatus",
    Permission.PAPER: "needed to submit and cancel paper runs",
    Permission.LIVE: "needed to submit and cancel live runs",
    Permission.ADMIN: "needed to settle an UNKNOWN order (SettleOrder), with the order's paper or live permission",
}

_current_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("execgw_caller")


class Unauthenticated(Exception):
    """No caller could be established; the message says what to send, and never holds a token."""


def listens_on_loopback_only(listen: str) -> bool:
    host, _port = split_host_port(listen)
    return is_loopback(host)


class Authenticator:
    """Maps a call's metadata and TLS peer to a Caller. Given a CallersFile, every check asks it
    to refresh first, so a caller added or removed since the last call is already known."""

    def __init__(self, callers: Callers | CallersFile | None, *, local_allowed: bool) -> None:
        self._callers = callers
        self.local_allowed = local_allowed

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        """Reads the callers file (CallersFileError stops start-up, naming the file)."""
        if settings.callers_file is None:
            return cls(None, local_allowed=listens_on_loopback_only(settings.listen))
        return cls(CallersFile(settings.callers_file), local_allowed=False)

    @property
    def callers_file(self) -> CallersFile | None:
        """The file the callers come from, for SIGHUP; None when they are fixed or there are none."""
        return self._callers if isinstance(self._callers, CallersFile) else None

    def _current_callers(self) -> Callers | None:
        if isinstance(self._callers, CallersFile):
            self._callers.refresh()
            return self._callers.callers
        return self._callers

    def caller_for(
        self, metadata: Sequence[tuple[str, str | bytes]], auth_context: Mapping[str, Iterable[bytes]]
    ) -> Caller:
        callers = self._current_callers()
        if callers is None:
            if self.local_allowed:
                return LOCAL_CALLER
            raise Unauthenticated("this gateway has no callers_file; without one it serves only loopback callers")
        token = _bearer_token(metadata)
        by_token = callers.by_token(token) if token is not None else None
        if token is not None and by_token is None:
            raise Unauthenticated("the bearer token is not valid for this gateway")
        try:
            by_certificate = callers.by_certificate(_certificate_names(auth_context))
        except CertificateOfSeveralCallers as several:
            raise Unauthenticated(str(several)) from None
        if by_token and by_certificate and by_token != by_certificate:
            raise Unauthenticated(
                f"the client certificate is caller {by_certificate.name!r} but the token is {by_token.name!r}"
            )
        caller = by_token or by_certificate
        if caller is None:
            raise Unauthenticated(
                "a credential is required: send metadata 'authorization: Bearer <token>' (execgw clients "
                "read EXECGW_TOKEN or EXECGW_TOKEN_FILE), or a client certificate of a configured caller"
            )
        return caller


def _bearer_token(metadata: Sequence[tuple[str, str | bytes]]) -> str | None:
    values = [value for key, value in metadata if key.lower() == "authorization"]
    if not values:
        return None
    if len(values) > 1:
        raise Unauthenticated("send one 'authorization' metadata entry, not several")
    value = values[0].decode(errors="replace") if isinstance(values[0], bytes) else values[0]
    scheme, _, token = value.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthenticated("the 'authorization' metadata must be 'Bearer <token>'")
    return token.strip()


def _certificate_names(auth_context: Mapping[str, Iterable[bytes]]) -> list[str]:
    # Only names of a certificate the TLS handshake verified: grpc puts x509 names in the auth
    # context only then, and only on an ssl transport.
    if b"ssl" not in list(auth_context.get("transport_security_type", ())):
        return []
    return [name.decode(errors="replace") for key in CERTIFICATE_NAME_KEYS for name in auth_context.get(key, ())]


# -- the interceptor -----------------------------------------------------------------------------


class CallerAuthentication(grpc.aio.ServerInterceptor):
    """Refuses every call but health and reflection with UNAUTHENTICATED until a caller is known."""

    def __init__(self, authenticator: Authenticator) -> None:
        self._authenticator = authenticator

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method  # type: ignore[attr-defined]
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        return _authenticated(handler, self._authenticator, method)


def _authenticated(handler: grpc.RpcMethodHandler, authenticator: Authenticator, method: str) -> grpc.RpcMethodHandler:
    """The same handler, establishing the caller before the servicer runs."""

    async def authenticate(context: grpc.aio.ServicerContext) -> None:
        try:
            caller = authenticator.caller_for(context.invocation_metadata() or (), context.auth_context())
        except Unauthenticated as refused:
            log.warning("%s from %s refused: %s", method, context.peer(), refused)
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, str(refused))
            raise
        _current_caller.set(caller)

    def wrap(behavior: Callable[..., Any]) -> Callable[..., Any]:
        if inspect.isasyncgenfunction(behavior):
            async def streaming(request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
                await authenticate(context)
                async for response in behavior(request, context):
                    yield response
            return streaming

        async def unary(request: Any, context: grpc.aio.ServicerContext) -> Any:
            await authenticate(context)
            return await behavior(request, context)
        return unary

    kinds = {
        "unary_unary": grpc.unary_unary_rpc_method_handler,
        "unary_stream": grpc.unary_stream_rpc_method_handler,
        "stream_unary": grpc.stream_unary_rpc_method_handler,
        "stream_stream": grpc.stream_stream_rpc_method_handler,
    }
    for kind, make in kinds.items():
        behavior = getattr(handler, kind)
        if behavior is not None:
            return make(wrap(behavior), handler.request_deserializer, handler.response_serializer)
    raise TypeError(f"{method}: a handler of no known kind")


# -- what the servicer asks ----------------------------------------------------------------------


def current_caller() -> Caller:
    """The caller of the RPC being served. Fails closed: a servicer run without the interceptor
    has no caller and serves nothing."""
    caller = _current_caller.get(None)
    if caller is None:
        raise RuntimeError("no authenticated caller: the server was built without CallerAuthentication")
    return caller


async def require(context: grpc.aio.ServicerContext, permission: Permission) -> Caller:
    """The caller, if it holds the permission; else the call ends PERMISSION_DENIED naming it."""
    caller = current_caller()
    if not caller.may(permission):
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"caller {caller.name!r} lacks the {permission.value!r} permission ({WHAT_IT_ALLOWS[permission]})",
        )
    return caller


async def require_submit(context: grpc.aio.ServicerContext, mode: str, account: str) -> Caller:
    """May the caller submit in this mode ('paper'/'live'; another value is left to validation)
    and to this account?"""
    caller = current_caller()
    if mode in (Permission.PAPER, Permission.LIVE):
        await require(context, Permission(mode))
    elif not (caller.may(Permission.PAPER) or caller.may(Permission.LIVE)):
        await require(context, Permission.PAPER)
    await require_account(context, caller, account)
    return caller


async def require_account(context: grpc.aio.ServicerContext, caller: Caller, account: str | None) -> None:
    if not caller.may_use_account(account):
        assert caller.accounts is not None
        what = f"account {account!r}" if account else "IB's default account (no account named)"
        await context.abort(
            grpc.StatusCode.PERMISSION_DENIED,
            f"caller {caller.name!r} may not trade {what}; its accounts: {', '.join(sorted(caller.accounts))}",
        )


def may_see(caller: Caller, account: str | None) -> bool:
    """Whether a run booked to ``account`` exists as far as this caller is concerned."""
    return caller.may_use_account(account)
