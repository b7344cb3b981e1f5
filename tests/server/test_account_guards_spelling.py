"""Paper and live kept apart whatever the spelling of the accounts an endpoint reports.

IB spells account ids in upper-case letters and digits (DU1234567, U1234567, DF…, F…). A hostile
or mis-pointed TWS reporting "du7654321" on the live endpoint was taken as live (only "DU…" was
paper), so live runs went to what names a paper account. Any id IB would not write is refused on
either endpoint: it cannot be shown to be of the endpoint's kind. End to end (gRPC → gateway →
ibapi → simulator) on SQLite and MariaDB: health says why, SubmitRun is FAILED_PRECONDITION,
nothing is written or sent."""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from execgw.sim.scenario import Scenario
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb

NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def _health(gw, service: str) -> tuple[int, str]:  # type: ignore[no-untyped-def]
    stub = health_pb2_grpc.HealthStub(gw.channel)
    reply, call = stub.Check.with_call(health_pb2.HealthCheckRequest(service=service), timeout=2)
    return reply.status, dict(call.trailing_metadata()).get("execgw-reason", "")


def _tws_reporting(accounts: list[str], seed: int) -> SimulatorThread:
    """A simulator that reports `accounts` as they are: the simulator itself only makes well
    spelled ones, so the hostile spelling is put in after."""
    sim = SimulatorThread(scenario=Scenario(), accounts=["DU1234567"], seed=seed)
    sim.simulator.accounts = list(accounts)
    return sim


@pytest.fixture
def live_tws() -> Iterator[list[SimulatorThread]]:
    started: list[SimulatorThread] = []
    yield started
    for sim in started:
        sim.stop()


def _with_live_endpoint(start_gateway, live_tws, tmp_path: Path, accounts: list[str]):  # type: ignore[no-untyped-def]
    """A gateway whose live endpoint reports `accounts`, and a bearer for a caller holding live."""
    sim = _tws_reporting(accounts, seed=7)
    sim.start()
    live_tws.append(sim)
    token = "execgw_" + secrets.token_urlsafe(32)
    callers = tmp_path / "callers.toml"
    callers.write_text(f'[callers.desk]\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
                       'permissions = ["read", "paper", "live"]\n')
    callers.chmod(0o600)
    gw = start_gateway(ib_live=f"127.0.0.1:{sim.port}", live_enabled=True, callers_file=callers)
    return gw, sim, (("authorization", f"Bearer {token}"),)


@pytest.mark.parametrize("accounts", [["du7654321"], ["U7654321", "df7654321"], ["u7654321"], ["U7654321", " U1"]],
                         ids=["paper-lower-case", "paper-master-lower-case", "live-lower-case", "space"])
def test_a_live_endpoint_reporting_an_account_ib_would_not_spell_trades_nothing(
    start_gateway, live_tws, tmp_path: Path, eventually, accounts: list[str],
) -> None:
    gw, sim, bearer = _with_live_endpoint(start_gateway, live_tws, tmp_path, accounts)
    odd = next(a for a in accounts if a != a.strip().upper() or not a.strip())
    eventually(lambda: _health(gw, "execgw.ib.live")[0] == NOT_SERVING, what="execgw.ib.live NOT_SERVING")
    assert repr(odd) in _health(gw, "execgw.ib.live")[1]

    before = gw.counts()
    for account in ("", accounts[0]):
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_LIVE, account=account, confirm_live="LIVE",
                                      orders=[gw.order(f"live-{account or 'default'}")])
        with pytest.raises(grpc.RpcError) as refused:
            gw.stub.SubmitRun(request, timeout=10, metadata=bearer)
        assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION, refused.value.details()
        assert repr(odd) in refused.value.details()
    assert gw.counts() == before
    assert sim.received_orders() == [] and sim.orders() == []


@pytest.mark.parametrize("accounts", [["du1234567"], ["DU1234567", "DU1 "]], ids=["lower-case", "space"])
def test_a_paper_endpoint_reporting_an_account_ib_would_not_spell_trades_nothing(
    start_gateway, eventually, accounts: list[str],
) -> None:
    sim = _tws_reporting(accounts, seed=8)
    sim.start()
    gw = start_gateway(sim=sim)
    eventually(lambda: _health(gw, "execgw.ib.paper")[0] == NOT_SERVING, what="execgw.ib.paper NOT_SERVING")
    before = gw.counts()
    with pytest.raises(grpc.RpcError) as refused:
        gw.submit(gw.order("paper"), account=accounts[0].strip())
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert gw.counts() == before and gw.sim.received_orders() == []


def test_a_live_endpoint_reporting_live_accounts_as_ib_spells_them_trades(start_gateway, live_tws, tmp_path) -> None:
    """The guard above refuses spellings, not live endpoints: U… and F… trade."""
    gw, sim, bearer = _with_live_endpoint(start_gateway, live_tws, tmp_path, ["F7654321", "U7654321"])
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_LIVE, account="U7654321", confirm_live="LIVE",
                                  orders=[gw.order("live")])
    run = gw.stub.SubmitRun(request, timeout=10, metadata=bearer).run
    assert run.account == "U7654321"
    sim.wait_for_order(gw.order("live").client_order_id, timeout=10)
