"""``ExecGwClient``: a synchronous, typed client of execgw.v1.ExecutionService (and of the
operator's AdminService on the same gateway).

Every call returns the contract's messages (``pb.Run``, ``pb.RunEvent`` ...) and raises the
exceptions of ``execgw.client.errors`` instead of ``grpc.RpcError``.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import grpc

from execgw.client.errors import ExecGwError, Unavailable, translate
from execgw.client.orders import Order, order_specs
from execgw.client.tls import ClientTls
from execgw.client.token import bearer_metadata, token_from
from execgw.v1 import admin_pb2 as admin
from execgw.v1 import admin_pb2_grpc as admin_grpc
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

DEFAULT_TARGET = "127.0.0.1:50051"
MODES = {"paper": pb.TRADING_MODE_PAPER, "live": pb.TRADING_MODE_LIVE}
# Events the gateway may put in one WatchRun message when several are ready (a busy run, a
# replay): gRPC's cost is per message, so a watcher that is behind catches up in fewer of them.
# The gateway allows up to 1,000; 500 fills are about 0.2 MB.
WATCH_EVENTS_PER_MESSAGE = 500


def events_in(message: pb.WatchRunResponse) -> Sequence[pb.RunEvent]:
    """The events one WatchRun message carries: several in `events` when the request set
    max_events_per_message above 1, else the one in `event`; none in a heartbeat."""
    kind = message.WhichOneof("message")
    if kind == "events":
        return message.events.events
    return [message.event] if kind == "event" else []


# Statuses after which repeating a unary call is safe and likely to help.
RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with jitter, so many clients of a restarted gateway don't retry in step.

    ``attempts`` bounds a unary call's tries; ``watch_failures`` bounds consecutive failed
    (re)connections of a watch stream (reset by every message that arrives).
    """

    attempts: int = 4
    watch_failures: int = 8
    initial_backoff: float = 0.25
    max_backoff: float = 5.0
    multiplier: float = 2.0

    def backoff(self, failure: int) -> float:
        """Seconds to wait after the ``failure``-th consecutive failure (1-based)."""
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (failure - 1))
        return ceiling * random.uniform(0.5, 1.0)


@dataclass(frozen=True)
class SubmitResult:
    """The run as recorded. ``existing`` is True when the gateway already had a run with these
    client order ids (a repeated submit, possibly this client's own retry): nothing was sent again."""

    run: pb.Run
    existing: bool

    @property
    def run_id(self) -> str:
        return self.run.run_id


class ExecGwClient:
    """Client of one execgw gateway.

    ``target`` is host:port, plaintext unless ``tls`` says which CA to trust (and which client
    certificate to present); pass ``channel`` to use your own (interceptors, tests) — it is then
    left open on ``close()``. ``timeout`` is each unary call's deadline in
    seconds; watch streams have none (they last as long as the run).
    """

    def __init__(
        self,
        target: str = DEFAULT_TARGET,
        *,
        channel: grpc.Channel | None = None,
        tls: ClientTls | None = None,
        timeout: float = 10.0,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        token: str | None = None,
        token_file: Path | None = None,
    ) -> None:
        # The caller's credential: ``token``, else read from ``token_file``, EXECGW_TOKEN or
        # EXECGW_TOKEN_FILE (TokenError if unreadable); sent as "authorization: Bearer" metadata.
        self._metadata = bearer_metadata(token or token_from(token_file))
        self.target = target
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._sleep = sleep
        self._owns_channel = channel is None
        if channel is None:
            channel = (grpc.secure_channel(target, tls.channel_credentials()) if tls is not None
                       else grpc.insecure_channel(target))
        self._channel = channel
        self._stub = pb_grpc.ExecutionServiceStub(self._channel)
        self._admin = admin_grpc.AdminServiceStub(self._channel)

    def __enter__(self) -> ExecGwClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_channel:
            self._channel.close()

    # -- calls ---------------------------------------------------------------------------------------

    def submit(
        self,
        orders: Iterable[Order | pb.OrderSpec],
        *,
        mode: str = "paper",
        account: str = "",
        deadline: timedelta | None = None,
        submitted_by: str = "",
        confirm_live: str = "",
    ) -> SubmitResult:
        """Submits a run of market orders; returns once the gateway has recorded and sent them.

        UNAVAILABLE and DEADLINE_EXCEEDED are retried with backoff (``RetryPolicy.attempts``):
        the gateway treats a repeat of the same client_order_ids as the same run, so a retry after
        a lost response returns that run (``existing=True``) and sends nothing twice. For the same
        reason, keep the client_order_ids when retrying yourself.

        A live run needs ``confirm_live="LIVE"`` (unless the gateway was told otherwise): the one
        word that keeps a paper client pointed at live by mistake from trading.

        Raises InvalidRequest (``.violations`` name the fields, e.g. ``orders[0].quantity``),
        Conflict, PreconditionFailed, Unavailable, or ValueError for an unknown ``mode``/side.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        request = pb.SubmitRunRequest(
            mode=MODES[mode], account=account, orders=order_specs(orders), submitted_by=submitted_by,
            confirm_live=confirm_live,
        )
        if deadline is not None:
            request.deadline.FromTimedelta(deadline)
        response: pb.SubmitRunResponse = self._call(self._stub.SubmitRun, request)
        return SubmitResult(response.run, response.existing)

    def get(self, run_id: str) -> pb.Run:
        """The run with its orders and every order's fills. Raises NotFound."""
        response: pb.GetRunResponse = self._call(self._stub.GetRun, pb.GetRunRequest(run_id=run_id))
        return response.run

    def cancel(self, run_id: str) -> pb.CancelRunResponse:
        """Cancels the run's open orders; one outcome per order. Repeating it is harmless (orders
        already done are reported as such), so it is retried like the other calls."""
        return self._call(self._stub.CancelRun, pb.CancelRunRequest(run_id=run_id))

    def watch(
        self,
        run_id: str,
        after_sequence: int = 0,
        *,
        on_heartbeat: Callable[[pb.Heartbeat], None] | None = None,
        max_events_per_message: int = WATCH_EVENTS_PER_MESSAGE,
    ) -> Iterator[pb.RunEvent]:
        """The run's events after ``after_sequence``, in order, until the gateway ends the stream
        (after the run's final status event).

        When the stream fails with UNAVAILABLE (gateway restart, shutdown, this watcher falling
        behind, network) it is reopened from the last sequence yielded, after a backoff; events
        are never yielded twice or skipped. After ``RetryPolicy.watch_failures`` consecutive
        failures Unavailable is raised. Heartbeats go to ``on_heartbeat`` when given.
        The gateway sends up to ``max_events_per_message`` events in one message when they are
        ready at once (1: one a message); they are yielded one by one all the same.
        Closing the iterator early cancels the stream.
        """
        last = after_sequence
        failures = 0
        while True:
            request = pb.WatchRunRequest(run_id=run_id, after_sequence=last,
                                         max_events_per_message=max_events_per_message)
            call = self._stub.WatchRun(request, metadata=self._metadata)
            try:
                for message in call:
                    failures = 0
                    if message.HasField("heartbeat"):
                        if on_heartbeat is not None:
                            on_heartbeat(message.heartbeat)
                        continue
                    for event in events_in(message):
                        if event.sequence <= last:  # already yielded before a reconnect
                            continue
                        last = event.sequence
                        yield event
                return
            except grpc.RpcError as rpc_error:
                error = translate(rpc_error)
                if not isinstance(error, Unavailable):
                    raise error from None
                failures += 1
                if failures > self.retry.watch_failures:
                    raise error from None
            finally:
                call.cancel()
            self._sleep(self.retry.backoff(failures))

    def list(self, page_size: int = 50, *, limit: int | None = None) -> Iterator[pb.Run]:
        """Runs newest first (orders without fills), fetching pages of ``page_size`` as iterated;
        stops after ``limit`` runs when given."""
        token = ""
        remaining = limit
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(page_size, remaining)
            page: pb.ListRunsResponse = self._call(
                self._stub.ListRuns, pb.ListRunsRequest(page_size=size, page_token=token)
            )
            yield from page.runs
            if remaining is not None:
                remaining -= len(page.runs)
            token = page.next_page_token
            if not token:
                return

    # -- the operator's calls (AdminService) ----------------------------------------------------------

    def status(self) -> admin.GetStatusResponse:
        """The gateway's status: IB endpoints, database, open runs, UNKNOWN orders. Needs `read`."""
        return self._call(self._admin.GetStatus, admin.GetStatusRequest())

    def settle(self, client_order_id: str, note: str) -> admin.SettleOrderResponse:
        """Concludes an UNKNOWN order as never at IB, in the gateway's books only (nothing is sent to
        IB). Needs `admin` and the order's mode. Not retried: a repeat after a lost answer would be
        refused as no longer UNKNOWN, which says less than the error that was lost."""
        request = admin.SettleOrderRequest(client_order_id=client_order_id, note=note)
        return self._call(self._admin.SettleOrder, request, attempts=1)

    # -- plumbing -------------------------------------------------------------------------------------

    def _call(self, method: Callable[..., T], request: object, *, attempts: int | None = None) -> T:
        """One unary call with retries of RETRYABLE statuses (up to `attempts`, default the
        policy's) and errors translated."""
        failure = 0
        while True:
            try:
                return method(request, timeout=self.timeout, metadata=self._metadata)
            except grpc.RpcError as rpc_error:
                error: ExecGwError = translate(rpc_error)
                failure += 1
                if error.code not in RETRYABLE or failure >= (attempts or self.retry.attempts):
                    raise error from None
            self._sleep(self.retry.backoff(failure))
