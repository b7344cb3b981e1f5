"""The callers file changes under a running gateway: `execgw caller add` / `remove` take effect at
the next call, SIGHUP reads the file again (with or without TLS), and a file that cannot be used
keeps the callers in use and says so, naming the file and never a token.

In process (GatewayThread, on SQLite and MariaDB) for the calls, and as `execgw serve` for SIGHUP,
which only the real process handles."""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from execgw.server.api.callers import Permission, add_caller, new_token
from execgw.server.cli import build_parser
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

pytestmark = pytest.mark.timeout(90)

EXECGW = Path(sys.executable).parent / "execgw"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def list_runs(stub: pb_grpc.ExecutionServiceStub, token: str) -> pb.ListRunsResponse:
    return stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=bearer(token))


def refused_code(stub: pb_grpc.ExecutionServiceStub, token: str) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        list_runs(stub, token)
    return caught.value.code()


def caller_command(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """`execgw caller ...` as typed in a terminal; returns what it printed on stdout (a new token)."""
    capsys.readouterr()
    args = build_parser().parse_args(["caller", *argv])
    assert args.func(args) == 0, capsys.readouterr().err
    return capsys.readouterr().out.strip()


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


# -- while it runs: the CLI's changes are served at the next call -----------------------------


def test_a_caller_added_with_the_cli_is_served_and_once_removed_is_refused_at_its_next_call(
    start_gateway, tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "callers.toml"
    desk = add_caller(path, "desk", [Permission.READ])
    gw = start_gateway(callers_file=path)
    newcomer_token = new_token()  # not yet anyone's
    assert refused_code(gw.stub, newcomer_token) == grpc.StatusCode.UNAUTHENTICATED

    token = caller_command(capsys, "add", "backend", "--permissions", "read,paper", "--callers-file", str(path))
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[gw.order("added")])
    run = gw.stub.SubmitRun(request, timeout=10, metadata=bearer(token)).run
    assert run.submitted_by == "backend"
    gw.sim.wait_for_order(f"{gw.prefix}-added", timeout=5)  # it reached IB
    assert [r.run_id for r in list_runs(gw.stub, token).runs] == [run.run_id]

    caller_command(capsys, "remove", "backend", "--callers-file", str(path))
    with pytest.raises(grpc.RpcError) as caught:
        list_runs(gw.stub, token)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert "not valid" in caught.value.details()
    before = gw.counts()
    with pytest.raises(grpc.RpcError) as caught:
        gw.stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[gw.order("removed")]),
                          timeout=10, metadata=bearer(token))
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert gw.counts()[:2] == before[:2]  # no run, no order
    assert not [o for o in gw.sim.received_orders() if o.order_ref == f"{gw.prefix}-removed"]
    assert list_runs(gw.stub, desk).runs  # the others are untouched


BAD_FILES = {
    # An operator's slip: the token pasted where its hash belongs. It must not reach the log.
    "a token instead of its hash": lambda token: f'[callers.desk]\ntoken_sha256 = "{token}"\npermissions = ["read"]\n',
    "not TOML": lambda token: f"[callers.desk]\ntoken_sha256 = {token}\n",  # unquoted
    "an unknown permission": lambda token: '[callers.desk]\npermissions = ["superuser"]\n',
    "not UTF-8": lambda token: "[callers.desk]\npermissions = [\"read\"]\n# \udcff\n",
    "missing": None,
}


@pytest.mark.parametrize("bad", list(BAD_FILES))
def test_a_file_that_cannot_be_used_keeps_the_callers_in_use_and_logs_an_error_naming_it(
    start_gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str], bad: str,
) -> None:
    caplog.set_level(logging.INFO, logger="execgw")
    path = tmp_path / "callers.toml"
    desk = add_caller(path, "desk", [Permission.READ])
    gw = start_gateway(callers_file=path)
    assert list_runs(gw.stub, desk).runs == []

    pasted = new_token()
    content = BAD_FILES[bad]
    if content is None:
        path.unlink()
    else:
        path.write_bytes(content(pasted).encode("utf-8", errors="surrogateescape"))
    for _ in range(3):
        assert list_runs(gw.stub, desk).runs == []  # still served, by the callers in use
    errors = [m for m in errors_logged(caplog) if str(path) in m]
    assert len(errors) == 1, errors_logged(caplog)  # once per version of the file, not at every call
    assert "the callers in use stay: desk" in errors[0]
    # Not even a piece of it: pydantic would show a long value's start and end, cut in the middle.
    for piece in (pasted, pasted[:20], pasted[-12:]):
        assert piece not in caplog.text

    # Put right, the file is served again at once: the new caller too.
    path.unlink(missing_ok=True)
    add_caller(path, "desk", [Permission.READ])  # a new token: the old one goes
    token = caller_command(capsys, "add", "after", "--permissions", "read", "--callers-file", str(path))
    assert list_runs(gw.stub, token).runs == []
    assert refused_code(gw.stub, desk) == grpc.StatusCode.UNAUTHENTICATED
    assert f"callers file {path} changed: callers now after, desk" in caplog.text


# -- SIGHUP, in the real process, without TLS ----------------------------------------------------


@pytest.fixture
def plaintext_serve(tmp_path: Path, free_port: Callable[[], int], eventually: Callable[..., None],
                    execgw_serve, serving) -> tuple[subprocess.Popen[bytes], str, Path, Path]:
    """`execgw serve` in plaintext on loopback with a callers file (embedded simulator, SQLite):
    the process, its target, its log and the callers file (holding "desk", token in desk.token)."""
    callers = tmp_path / "callers.toml"
    (tmp_path / "desk.token").write_text(add_caller(callers, "desk", [Permission.READ]))
    target = f"127.0.0.1:{free_port()}"
    log = tmp_path / "serve.log"
    process = execgw_serve(["--listen", target], log, {"EXECGW_CALLERS_FILE": str(callers)})
    with grpc.insecure_channel(target) as channel:
        eventually(lambda: serving(channel), 30, "the gateway never served")
    return process, target, log, callers


def test_sighup_reloads_the_callers_file_without_tls(plaintext_serve, eventually) -> None:
    process, target, log, callers = plaintext_serve
    desk = (callers.parent / "desk.token").read_text()
    token = add_caller(callers, "night-desk", [Permission.READ])

    # Read on SIGHUP, before any call could have noticed the change.
    process.send_signal(signal.SIGHUP)
    eventually(lambda: "reloaded on SIGHUP: callers now desk, night-desk" in log.read_text(), 15,
               "no reload logged")
    with grpc.insecure_channel(target) as channel:
        stub = pb_grpc.ExecutionServiceStub(channel)
        assert list_runs(stub, token).runs == []

        callers.write_text("[callers.desk\n")
        process.send_signal(signal.SIGHUP)
        eventually(lambda: f"callers file {callers} is not valid TOML" in log.read_text(), 15, "no error logged")
        assert list_runs(stub, desk).runs == [] and list_runs(stub, token).runs == []
    assert process.poll() is None  # SIGHUP reloads, it does not stop the gateway
    text = log.read_text()
    assert 'level=ERROR logger=execgw.server.api.callers_file msg="callers file ' in text
    assert "the callers in use stay: desk, night-desk" in text
    assert desk not in text and token not in text
    process.send_signal(signal.SIGINT)
    assert process.wait(20) == 0


def test_serve_with_a_bad_callers_file_stops_with_exit_code_2_naming_it(tmp_path: Path, clean_environment) -> None:
    callers = tmp_path / "callers.toml"
    callers.write_text('[callers.desk]\npermissions = ["superuser"]\n')
    result = subprocess.run([str(EXECGW), "serve", "--listen", "127.0.0.1:0"], cwd=tmp_path, capture_output=True,
                            text=True, timeout=60, env={**clean_environment(), "EXECGW_CALLERS_FILE": str(callers)})
    assert result.returncode == 2, result.stderr
    assert f"invalid configuration: callers file {callers} is not valid" in result.stderr
    assert "Traceback" not in result.stderr
