"""Callers: every call but health and reflection needs a credential; permissions and accounts decide
what a caller may submit, cancel and read; the books say who submitted and who cancelled."""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf import message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from sqlalchemy import MetaData, select

from execgw.client import ExecGwClient
from execgw.server.api.auth import Authenticator, Unauthenticated
from execgw.server.api.callers import LOCAL_CALLER, Permission, add_caller, load_callers, new_token
from execgw.server.cli import build_parser
from execgw.server.db.models import utcnow
from execgw.sim.thread import SimulatorThread
from execgw.v1 import execution_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["ExecutionService"]
UNKNOWN_RUN = "3f2b8c1e-9d4a-4e7b-8a6f-1c2d3e4f5a6b"
# A live run must also say so, where the gateway asks for it (the live confirmation of issue 10).
LIVE_CONFIRMATION = {"confirm_live": "LIVE"} if "confirm_live" in pb.SubmitRunRequest.DESCRIPTOR.fields_by_name else {}

CALLERS = {
    "reader": ([Permission.READ], None),
    "trader": ([Permission.READ, Permission.PAPER], None),
    "blind": ([Permission.PAPER], None),
    "du1": ([Permission.READ, Permission.PAPER], ["DU1"]),
    "du2": ([Permission.READ, Permission.PAPER], ["DU2"]),
    "live-desk": ([Permission.READ, Permission.PAPER, Permission.LIVE], None),
}


@pytest.fixture
def callers(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """A callers file and each caller's token."""
    path = tmp_path / "callers.toml"
    tokens = {name: add_caller(path, name, permissions, accounts=accounts)
              for name, (permissions, accounts) in CALLERS.items()}
    return path, tokens


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def refused(call, *args, **kwargs) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        result = call(*args, timeout=10, **kwargs)
        if not isinstance(result, pb.SubmitRunResponse | pb.GetRunResponse | pb.ListRunsResponse | pb.CancelRunResponse):
            list(result)  # a stream: its status comes with the first read
    return caught.value


def submit(gw, token: str, *orders: pb.OrderSpec, **fields) -> pb.SubmitRunResponse:  # type: ignore[no-untyped-def]
    request = pb.SubmitRunRequest(orders=list(orders), **{"mode": pb.TRADING_MODE_PAPER, **fields})
    return gw.stub.SubmitRun(request, timeout=10, metadata=bearer(token))


@pytest.fixture
def guarded(start_gateway, callers):  # type: ignore[no-untyped-def]
    """A gateway with a callers file, against a simulator managing DU1 and DU2 that fills at once."""
    return start_gateway({"accounts": ["DU1", "DU2"]}, callers_file=callers[0])


# -- credentials ---------------------------------------------------------------------------------


@pytest.mark.parametrize("method", [m.name for m in SERVICE.methods])
def test_every_method_needs_a_credential(guarded, method):
    descriptor = SERVICE.methods_by_name[method]
    request = message_factory.GetMessageClass(descriptor.input_type)()
    before = guarded.counts()
    error = refused(getattr(guarded.stub, method), request)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "authorization: Bearer <token>" in error.details()
    assert guarded.counts() == before and guarded.sim.orders() == []


@pytest.mark.parametrize("metadata", ["wrong", "malformed", "twice"])
def test_a_wrong_token_is_unauthenticated_and_never_echoed(guarded, callers, caplog, metadata):
    caplog.set_level(logging.DEBUG)
    wrong = new_token()
    sent = {
        "wrong": bearer(wrong),
        "malformed": (("authorization", f"Token {wrong}"),),
        "twice": bearer(wrong) + bearer(callers[1]["trader"]),
    }[metadata]
    error = refused(guarded.stub.ListRuns, pb.ListRunsRequest(), metadata=sent)
    assert error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert wrong not in error.details() and wrong not in caplog.text
    assert "refused" in caplog.text  # the refusal itself is logged, for whoever watches the gateway


def test_the_right_token_is_served_and_the_run_is_booked_to_its_caller(guarded, callers):
    tokens = callers[1]
    response = submit(guarded, tokens["trader"], guarded.order("mine"), submitted_by="someone-else", account="DU1")
    run = response.run
    assert (run.submitted_by, run.submitted_note) == ("trader", "someone-else")
    assert run.submitted_from.startswith("ipv4:127.0.0.1:")
    row = guarded.run_row(run.run_id)
    assert (row.submitted_by, row.submitted_note, row.submitted_from) == ("trader", "someone-else", run.submitted_from)
    got = guarded.stub.GetRun(pb.GetRunRequest(run_id=run.run_id), timeout=10, metadata=bearer(tokens["reader"]))
    assert got.run.submitted_by == "trader"


# -- permissions ---------------------------------------------------------------------------------


def test_a_read_only_caller_may_not_submit(guarded, callers):
    before = guarded.counts()
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[guarded.order("no")])
    error = refused(guarded.stub.SubmitRun, request, metadata=bearer(callers[1]["reader"]))
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "'reader'" in error.details() and "'paper' permission" in error.details()
    assert guarded.counts() == before and guarded.sim.orders() == []


def test_a_caller_without_read_may_not_read_runs(guarded, callers):
    token = callers[1]["blind"]
    run_id = submit(guarded, token, guarded.order("blind"), account="DU1").run.run_id
    for call, request in [(guarded.stub.GetRun, pb.GetRunRequest(run_id=run_id)),
                          (guarded.stub.ListRuns, pb.ListRunsRequest()),
                          (guarded.stub.WatchRun, pb.WatchRunRequest(run_id=run_id))]:
        error = refused(call, request, metadata=bearer(token))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'read' permission" in error.details()


def test_a_paper_caller_may_not_submit_live_and_a_live_caller_may(start_gateway, callers):
    live_tws = SimulatorThread(accounts=["U7654321"])
    live_tws.start()
    try:
        gw = start_gateway(ib_live=f"127.0.0.1:{live_tws.port}", live_enabled=True, callers_file=callers[0])
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_LIVE, orders=[gw.order("real")], **LIVE_CONFIRMATION)
        error = refused(gw.stub.SubmitRun, request, metadata=bearer(callers[1]["trader"]))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'live' permission" in error.details()
        assert live_tws.orders() == [] and gw.counts()[0] == 0

        run = gw.stub.SubmitRun(request, timeout=10, metadata=bearer(callers[1]["live-desk"])).run
        assert run.mode == pb.TRADING_MODE_LIVE and run.submitted_by == "live-desk"
        live_tws.wait_for_order(f"{gw.prefix}-real", timeout=5)
        assert [o.order_ref for o in live_tws.orders()] == [f"{gw.prefix}-real"]
    finally:
        live_tws.stop()


def test_without_a_callers_file_the_local_caller_reads_and_trades_paper_but_never_live(start_gateway):
    live_tws = SimulatorThread(accounts=["U7654321"])
    live_tws.start()
    try:
        gw = start_gateway(ib_live=f"127.0.0.1:{live_tws.port}", live_enabled=True)
        run = gw.submit(gw.order("paper"), submitted_by="a note").run
        assert (run.submitted_by, run.submitted_note) == ("local", "a note")
        assert gw.stub.GetRun(pb.GetRunRequest(run_id=run.run_id), timeout=10).run.run_id == run.run_id
        error = refused(gw.stub.SubmitRun, pb.SubmitRunRequest(
            mode=pb.TRADING_MODE_LIVE, orders=[gw.order("real")], **LIVE_CONFIRMATION))
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "'local'" in error.details() and "'live' permission" in error.details()
        assert live_tws.orders() == []
    finally:
        live_tws.stop()


def test_a_caller_sees_only_runs_of_its_accounts(guarded, callers):
    tokens = callers[1]
    ours = submit(guarded, tokens["du1"], guarded.order("ours"), account="DU1").run.run_id
    theirs = submit(guarded, tokens["du2"], guarded.order("theirs"), account="DU2").run.run_id
    as_du1 = bearer(tokens["du1"])

    listed = guarded.stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=as_du1)
    assert [r.run_id for r in listed.runs] == [ours]
    everything = guarded.stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=bearer(tokens["trader"]))
    assert {r.run_id for r in everything.runs} == {ours, theirs}

    # Another account's run is NOT_FOUND in the very words of a run that does not exist.
    missing = refused(guarded.stub.GetRun, pb.GetRunRequest(run_id=UNKNOWN_RUN), metadata=as_du1)
    for call, request in [(guarded.stub.GetRun, pb.GetRunRequest(run_id=theirs)),
                          (guarded.stub.WatchRun, pb.WatchRunRequest(run_id=theirs)),
                          (guarded.stub.CancelRun, pb.CancelRunRequest(run_id=theirs))]:
        error = refused(call, request, metadata=as_du1)
        assert error.code() == grpc.StatusCode.NOT_FOUND
        assert error.details() == missing.details().replace(UNKNOWN_RUN, theirs)
    assert guarded.run_row(theirs).cancelled_by is None

    for account in ("DU2", ""):  # another account, and IB's default account, which could be any
        error = refused(guarded.stub.SubmitRun, pb.SubmitRunRequest(
            mode=pb.TRADING_MODE_PAPER, account=account, orders=[guarded.order(f"x{account}")]), metadata=as_du1)
        assert error.code() == grpc.StatusCode.PERMISSION_DENIED and "DU1" in error.details()


def test_concurrent_callers_each_see_their_own_runs(guarded, callers):
    from concurrent.futures import ThreadPoolExecutor

    tokens = callers[1]
    runs = {name: submit(guarded, tokens[name], guarded.order(name), account=name.upper()).run.run_id
            for name in ("du1", "du2")}

    def listed(name: str) -> tuple[str, list[str]]:
        response = guarded.stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=bearer(tokens[name]))
        return name, [r.run_id for r in response.runs]

    with ThreadPoolExecutor(8) as pool:
        for name, seen in pool.map(listed, ["du1", "du2"] * 20):
            assert seen == [runs[name]]


# -- the books -----------------------------------------------------------------------------------


def test_a_cancel_records_who_cancelled_and_when(start_gateway, callers):
    tokens = callers[1]
    gw = start_gateway({"default": {"outcome": "rest"}}, callers_file=callers[0])
    run_id = submit(gw, tokens["trader"], gw.order("open")).run.run_id
    gw.sim.wait_for_order(f"{gw.prefix}-open", timeout=5)
    before = utcnow()
    response = gw.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30, metadata=bearer(tokens["live-desk"]))
    after = utcnow()
    assert response.run.status == pb.RUN_STATUS_CANCELLED
    assert response.run.cancelled_by == "live-desk" and response.run.submitted_by == "trader"
    row = gw.run_row(run_id)
    assert row.cancelled_by == "live-desk" and row.cancelled_at is not None and before <= row.cancelled_at <= after
    assert response.run.cancelled_at.ToDatetime() == row.cancelled_at

    # A second cancel of the finished run changes nothing: the first one ended it.
    gw.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30, metadata=bearer(tokens["trader"]))
    assert gw.run_row(run_id).cancelled_by == "live-desk"


def test_a_run_that_ends_by_itself_has_no_canceller(guarded, callers):
    run_id = submit(guarded, callers[1]["trader"], guarded.order("fills"), account="DU1").run.run_id
    events = list(guarded.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30,
                                        metadata=bearer(callers[1]["trader"])))
    assert events[-1].event.run_status.final
    row = guarded.run_row(run_id)
    assert (row.cancelled_by, row.cancelled_at) == (None, None)


def test_tokens_are_never_logged_nor_stored(start_gateway, callers, caplog):
    caplog.set_level(logging.DEBUG)
    path, tokens = callers
    gw = start_gateway({"default": {"outcome": "rest"}}, callers_file=path)
    token = tokens["trader"]
    run_id = submit(gw, token, gw.order("t"), submitted_by="note").run.run_id
    gw.sim.wait_for_order(f"{gw.prefix}-t", timeout=5)
    gw.stub.CancelRun(pb.CancelRunRequest(run_id=run_id), timeout=30, metadata=bearer(token))
    gw.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10, metadata=bearer(token))
    refused(gw.stub.GetRun, pb.GetRunRequest(run_id=run_id), metadata=bearer(token + "x"))

    assert token not in caplog.text
    assert all(t not in path.read_text() for t in tokens.values())
    tables = MetaData()
    tables.reflect(gw.db)
    with gw.db.connect() as conn:
        stored = [str(value) for table in tables.sorted_tables for row in conn.execute(select(table)) for value in row]
    assert stored and not [v for v in stored if token in v or token[7:20] in v]


# -- the command and the client ------------------------------------------------------------------


def test_caller_add_prints_a_token_that_works(start_gateway, tmp_path, capsys, monkeypatch):
    path = tmp_path / "callers.toml"
    args = build_parser().parse_args(
        ["caller", "add", "backend", "--permissions", "read,paper", "--callers-file", str(path)])
    assert args.func(args) == 0
    token = capsys.readouterr().out.strip()
    assert token.startswith("execgw_") and len(token) > 40
    assert token not in path.read_text() and path.stat().st_mode & 0o077 == 0
    assert load_callers(path).by_token(token).name == "backend"  # type: ignore[union-attr]

    gw = start_gateway(callers_file=path)
    token_file = tmp_path / "token"
    token_file.write_text(token + "\n")
    monkeypatch.delenv("EXECGW_TOKEN", raising=False)
    monkeypatch.delenv("EXECGW_TOKEN_FILE", raising=False)
    with ExecGwClient(gw.gateway.target, token_file=token_file) as client:
        run = client.submit([gw.order("cli")], deadline=timedelta(seconds=10), submitted_by="job 7").run
        assert run.submitted_by == "backend"
    monkeypatch.setenv("EXECGW_TOKEN", token)
    with ExecGwClient(gw.gateway.target) as client:
        assert [r.run_id for r in client.list()] == [run.run_id]

    monkeypatch.delenv("EXECGW_TOKEN")
    runs = build_parser().parse_args(["runs", "--target", gw.gateway.target, "--token-file", str(token_file)])
    assert runs.func(runs) == 0
    anonymous = build_parser().parse_args(["runs", "--target", gw.gateway.target])
    assert anonymous.func(anonymous) == 1
    assert "credential is required" in " ".join(capsys.readouterr().err.split())


def test_health_and_reflection_need_no_credential(guarded):
    health = health_pb2_grpc.HealthStub(guarded.channel)
    for name in ("", "execgw.v1.ExecutionService", "execgw.ib.paper"):
        answer = health.Check(health_pb2.HealthCheckRequest(service=name), timeout=5)
        assert answer.status == health_pb2.HealthCheckResponse.SERVING
    reflection = reflection_pb2_grpc.ServerReflectionStub(guarded.channel)
    answers = list(reflection.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]),
                                                   timeout=5))
    assert "execgw.v1.ExecutionService" in [s.name for s in answers[0].list_services_response.service]


# -- the authenticator on its own ----------------------------------------------------------------

SSL = {"transport_security_type": [b"ssl"]}


def test_a_verified_certificate_name_is_its_caller_and_must_agree_with_a_token(tmp_path):
    path = tmp_path / "callers.toml"
    token = add_caller(path, "desk", [Permission.READ], certificate_names=["desk.internal"])
    other = add_caller(path, "other", [Permission.READ])
    auth = Authenticator(load_callers(path), local_allowed=False)
    by_san = {**SSL, "x509_subject_alternative_name": [b"desk.internal"]}
    assert auth.caller_for((), by_san).name == "desk"
    assert auth.caller_for((), {**SSL, "x509_common_name": [b"desk.internal"]}).name == "desk"
    assert auth.caller_for(bearer(token), by_san).name == "desk"
    with pytest.raises(Unauthenticated, match="certificate is caller 'desk'"):
        auth.caller_for(bearer(other), by_san)
    with pytest.raises(Unauthenticated):  # names without a TLS transport are not a certificate's
        auth.caller_for((), {"x509_common_name": [b"desk.internal"]})
    with pytest.raises(Unauthenticated):
        auth.caller_for((), {**SSL, "x509_common_name": [b"stranger"]})


@pytest.mark.parametrize(("listen", "local"), [("127.0.0.1:1", True), ("[::1]:1", True), ("localhost:1", True),
                                               ("0.0.0.0:1", False), ("10.0.0.5:1", False), ("gw.example:1", False)])
def test_the_local_caller_exists_only_on_loopback_without_a_callers_file(listen, local):
    from execgw.server.config import Settings

    auth = Authenticator.from_settings(Settings(listen=listen))
    if local:
        caller = auth.caller_for((), {})
        assert caller == LOCAL_CALLER and not caller.may(Permission.LIVE)
    else:
        with pytest.raises(Unauthenticated, match="no callers_file"):
            auth.caller_for((), {})


def test_with_a_callers_file_a_loopback_call_needs_a_credential_too(callers):
    from execgw.server.config import Settings

    auth = Authenticator.from_settings(Settings(listen="127.0.0.1:1", callers_file=callers[0]))
    with pytest.raises(Unauthenticated, match="credential is required"):
        auth.caller_for((), {})
    assert auth.caller_for(bearer(callers[1]["reader"]), {}).name == "reader"


def test_another_callers_retry_of_a_run_is_refused_and_shows_nothing_of_it(guarded, callers):
    """client_order_ids are global: a second caller repeating a run's request exactly neither
    creates a run nor gets the first one back (it could not read it otherwise)."""
    _, tokens = callers
    order = guarded.order("shared")
    first = submit(guarded, tokens["trader"], order, account="DU1")
    guarded.sim.wait_for_order(order.client_order_id, timeout=10)  # SubmitRun answers before sending
    runs_and_orders = guarded.counts()[:2]  # the first run's fills and events still come in
    error = refused(guarded.stub.SubmitRun, pb.SubmitRunRequest(
        mode=pb.TRADING_MODE_PAPER, account="DU1", orders=[order]), metadata=bearer(tokens["du1"]))
    assert error.code() == grpc.StatusCode.ALREADY_EXISTS
    assert first.run.run_id not in error.details()
    assert guarded.counts()[:2] == runs_and_orders
    assert len([o for o in guarded.sim.received_orders() if o.order_ref == order.client_order_id]) == 1
    again = submit(guarded, tokens["trader"], order, account="DU1")
    assert again.existing and again.run.run_id == first.run.run_id
