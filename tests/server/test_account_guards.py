"""Paper and live kept apart, the account allowlists, and the live confirmation (issue 10).

A hostile tester had a simulator report the live account U1234567 on the paper endpoint: a paper
run was booked to it. Here each guard is driven end to end (gRPC → gateway → ibapi → simulator,
database checked after) on SQLite and MariaDB: refused with the reason, nothing written, nothing
reached the simulator."""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

LIVE = pb.TRADING_MODE_LIVE


def _precondition(error: grpc.RpcError) -> list[tuple[str, str]]:
    """(subject, description) of each violation in the PreconditionFailure of `error`."""
    status = rpc_status.from_call(error)
    assert status is not None, "the refusal carries no google.rpc.Status"
    failure = error_details_pb2.PreconditionFailure()
    assert any(detail.Unpack(failure) for detail in status.details)
    return [(v.subject, v.description) for v in failure.violations]


def _health(live, service: str) -> tuple[int, str]:
    stub = health_pb2_grpc.HealthStub(live.channel)
    reply, call = stub.Check.with_call(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return reply.status, dict(call.trailing_metadata()).get("execgw-reason", "")


def _nothing_reached(sim: SimulatorThread, prefix: str) -> None:
    assert not [o for o in sim.received_orders() if o.order_ref.startswith(prefix)], "an order reached IB"
    assert not [o for o in sim.orders() if o.order_ref.startswith(prefix)], "IB holds an order"


@pytest.fixture
def other_sim() -> Iterator[SimulatorThread]:
    """Starts a second simulator (the live TWS) with the accounts given; stops it after."""
    started: list[SimulatorThread] = []

    def start(*accounts: str, scenario: dict | None = None) -> SimulatorThread:
        sim = SimulatorThread(scenario=Scenario.from_dict(scenario or {}), accounts=list(accounts), seed=99)
        sim.start()
        started.append(sim)
        return sim

    yield start  # type: ignore[misc]
    for sim in started:
        sim.stop()


class _Bearer(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    def __init__(self, token: str) -> None:
        self._metadata = (("authorization", f"Bearer {token}"),)

    def _with_token(self, details):  # type: ignore[no-untyped-def]
        return details._replace(metadata=tuple(details.metadata or ()) + self._metadata)

    def intercept_unary_unary(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):  # type: ignore[no-untyped-def]
        return continuation(self._with_token(details), request)


def _live_gateway(start_gateway, other_sim, tmp_path, *live_accounts: str, **settings):
    """A gateway with a paper simulator and a live one reporting `live_accounts`, called as a
    caller allowed to trade live (live trading always needs a configured caller: auth.py)."""
    live_sim = other_sim(*live_accounts)
    token = "execgw_" + secrets.token_urlsafe(32)
    callers = tmp_path / "callers.toml"
    callers.write_text(f'[callers.trader]\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
                       'permissions = ["read", "paper", "live"]\n')
    callers.chmod(0o600)
    gateway = start_gateway(ib_live=f"127.0.0.1:{live_sim.port}", live_enabled=True, callers_file=callers, **settings)
    channel = grpc.intercept_channel(gateway.channel, _Bearer(token))
    gateway.stub = pb_grpc.ExecutionServiceStub(channel)
    return gateway, live_sim


# -- paper and live kept apart -------------------------------------------------------------------


@pytest.mark.parametrize("accounts", [["U1234567"], ["DU1234567", "U7654321"], ["F1234567"]],
                         ids=["live-account", "paper-and-live", "live-advisor"])
def test_a_paper_endpoint_reporting_a_live_account_trades_nothing(start_gateway, eventually, caplog, accounts):
    caplog.set_level(logging.ERROR, logger="execgw")
    live = start_gateway({"accounts": accounts})
    wrong = [a for a in accounts if not a.startswith("DU")]

    eventually(lambda: _health(live, "execgw.ib.paper")[0] == health_pb2.HealthCheckResponse.NOT_SERVING,
               what="execgw.ib.paper NOT_SERVING")
    _, reason = _health(live, "execgw.ib.paper")
    assert all(a in reason for a in wrong) and "live" in reason, reason
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any(all(a in m for a in wrong) for m in logged), f"no ERROR naming {wrong}: {logged}"

    before = live.counts()
    for account in ("", accounts[0]):
        with pytest.raises(grpc.RpcError) as refused:
            live.submit(live.order(f"p-{account or 'default'}"), account=account)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "paper" in refused.value.details() and wrong[0] in refused.value.details()
        assert _precondition(refused.value)[0][0] == "ib.paper"
    assert live.counts() == before, "a refused run writes nothing"
    _nothing_reached(live.sim, live.prefix)


def test_a_live_endpoint_reporting_a_paper_account_trades_nothing(start_gateway, other_sim, tmp_path, eventually):
    live, live_sim = _live_gateway(start_gateway, other_sim, tmp_path, "DU7654321")

    eventually(lambda: _health(live, "execgw.ib.live")[0] == health_pb2.HealthCheckResponse.NOT_SERVING,
               what="execgw.ib.live NOT_SERVING")
    assert "DU7654321" in _health(live, "execgw.ib.live")[1]
    assert _health(live, "execgw.ib.paper")[0] == health_pb2.HealthCheckResponse.SERVING

    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("l-1"), mode=LIVE, confirm_live="LIVE")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "live" in refused.value.details() and "DU7654321" in refused.value.details()
    assert _precondition(refused.value)[0][0] == "ib.live"
    assert live.counts() == before
    _nothing_reached(live_sim, live.prefix)
    # The paper endpoint is untouched by the live one's mismatch.
    run, _ = live.run_to_end(live.order("p-1"))
    assert run.status == pb.RUN_STATUS_SUCCESS


def test_an_endpoint_is_checked_again_on_every_connect(start_gateway, eventually):
    """A TWS that came back logged in to another account is refused from that connect on."""
    sim = SimulatorThread(scenario=Scenario(), accounts=["DU1234567"])
    sim.start()
    live = start_gateway(sim=sim)
    run, _ = live.run_to_end(live.order("before"))
    assert run.status == pb.RUN_STATUS_SUCCESS

    port = sim.port
    sim.stop()
    relogged = SimulatorThread(scenario=Scenario(), accounts=["U1234567"], port=port)
    relogged.start()
    live.sim = relogged
    try:
        eventually(lambda: "U1234567" in _health(live, "execgw.ib.paper")[1], timeout=30,
                   what="the reconnect's accounts checked")
        before = live.counts()
        with pytest.raises(grpc.RpcError) as refused:
            live.submit(live.order("after"))
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert live.counts() == before
        _nothing_reached(relogged, live.prefix)
    finally:
        relogged.stop()


# -- the account of a run ------------------------------------------------------------------------

TWO_PAPER_ACCOUNTS = {"accounts": ["DU1111111", "DU2222222"]}


def test_an_account_outside_the_allowlist_is_refused(start_gateway):
    live = start_gateway(TWO_PAPER_ACCOUNTS, paper_accounts=["DU1111111"])
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("other"), account="DU2222222")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _precondition(refused.value)[0][0] == "account"
    assert "DU2222222" in refused.value.details() and "paper_accounts" in refused.value.details()
    assert live.counts() == before
    _nothing_reached(live.sim, live.prefix)

    run, _ = live.run_to_end(live.order("allowed"), account="DU1111111")
    assert run.status == pb.RUN_STATUS_SUCCESS
    assert {e.account for e in live.sim_executions()} == {"DU1111111"}


def test_an_account_ib_does_not_manage_is_refused(start_gateway):
    live = start_gateway(TWO_PAPER_ACCOUNTS)
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("unmanaged"), account="DU3333333")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _precondition(refused.value)[0][0] == "account"
    assert "DU3333333" in refused.value.details()
    assert live.counts() == before
    _nothing_reached(live.sim, live.prefix)


def test_no_account_where_ib_manages_several_is_refused(start_gateway):
    """IB would book it to the login's default account: the caller must choose, not IB."""
    live = start_gateway(TWO_PAPER_ACCOUNTS)
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("unnamed"))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _precondition(refused.value)[0][0] == "account"
    assert "DU1111111" in refused.value.details() and "DU2222222" in refused.value.details()
    assert live.counts() == before
    _nothing_reached(live.sim, live.prefix)


# -- live confirmation ---------------------------------------------------------------------------


@pytest.mark.parametrize("confirmation", ["", "live", "yes", "LIVE "], ids=repr)
def test_a_live_run_without_its_confirmation_is_refused(start_gateway, other_sim, tmp_path, confirmation):
    live, live_sim = _live_gateway(start_gateway, other_sim, tmp_path, "U1234567")
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("unconfirmed"), mode=LIVE, confirm_live=confirmation)
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "confirm_live" in refused.value.details()
    assert _precondition(refused.value)[0][0] == "confirm_live"
    assert live.counts() == before
    _nothing_reached(live_sim, live.prefix)


def test_a_confirmed_live_run_trades_on_the_live_endpoint(start_gateway, other_sim, tmp_path):
    live, live_sim = _live_gateway(start_gateway, other_sim, tmp_path, "U1234567")
    run, _ = live.run_to_end(live.order("confirmed"), mode=LIVE, confirm_live="LIVE")
    assert run.status == pb.RUN_STATUS_SUCCESS
    assert [e.account for e in live_sim.executions() if e.order_ref.startswith(live.prefix)] == ["U1234567"]
    _nothing_reached(live.sim, live.prefix)


def test_a_paper_run_carrying_the_live_confirmation_is_refused(live):
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("confused"), confirm_live="LIVE")
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert _precondition(refused.value)[0][0] == "confirm_live"
    assert live.counts() == before
    _nothing_reached(live.sim, live.prefix)


def test_the_confirmation_can_be_switched_off(start_gateway, other_sim, tmp_path):
    live, _ = _live_gateway(start_gateway, other_sim, tmp_path, "U1234567", live_requires_confirmation=False)
    run, _ = live.run_to_end(live.order("unconfirmed"), mode=LIVE)
    assert run.status == pb.RUN_STATUS_SUCCESS
