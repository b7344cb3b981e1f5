"""What a callers file may say, checked as a hostile caller or a careless edit would use it: one
token or certificate name is one caller, an account is spelled as IB spells it, and `execgw caller
add` never turns "no accounts given" into "every account". End to end against the real gateway
(GatewayThread, SQLite and MariaDB) where a call shows the effect; the parser alone where only the
file is in question."""

from __future__ import annotations

import logging
import stat
import threading
from pathlib import Path

import grpc
import pytest

from execgw.server.api.auth import Authenticator, Unauthenticated
from execgw.server.api.callers import (
    Callers,
    CallersFileError,
    Permission,
    add_caller,
    load_callers,
    new_token,
    parse_callers,
    remove_caller,
    token_hash,
)
from execgw.server.cli import build_parser
from execgw.v1 import execution_pb2 as pb

pytestmark = pytest.mark.timeout(90)

SSL = {"transport_security_type": [b"ssl"]}


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


def refused(call, request, token: str) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    with pytest.raises(grpc.RpcError) as caught:
        call(request, timeout=10, metadata=bearer(token))
    return caught.value


def errors_logged(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


def entry(name: str, token: str, permissions: str, extra: str = "") -> str:
    return f'\n[callers.{name}]\ntoken_sha256 = "{token_hash(token)}"\npermissions = [{permissions}]\n{extra}'


# -- one token, one caller -----------------------------------------------------------------------


def test_a_second_caller_with_an_existing_token_hash_is_refused_and_the_token_keeps_its_caller(
    start_gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """An entry copied to make a new caller, its hash left as it was: the old token would now be
    whichever entry comes last, here one that trades live."""
    caplog.set_level(logging.INFO, logger="execgw")
    path = tmp_path / "callers.toml"
    reader = add_caller(path, "reader", [Permission.READ])
    gw = start_gateway({"accounts": ["DU1"]}, callers_file=path)

    path.write_text(path.read_text() + entry("desk", reader, '"read", "paper", "live"'))
    before = gw.counts()
    error = refused(gw.stub.SubmitRun, pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[gw.order("copied")]),
                    reader)
    assert error.code() == grpc.StatusCode.PERMISSION_DENIED, error.details()
    assert "'reader'" in error.details()
    assert gw.counts() == before and gw.sim.received_orders() == []

    errors = [m for m in errors_logged(caplog) if str(path) in m]
    assert len(errors) == 1 and "'desk'" in errors[0] and "'reader'" in errors[0], errors
    assert token_hash(reader) not in caplog.text  # the hash stands for the token: never logged


def test_a_certificate_name_listed_for_two_callers_is_refused() -> None:
    text = entry("a", new_token(), '"read"', 'certificate_names = ["desk.internal"]\n')
    text += entry("b", new_token(), '"read", "paper"', 'certificate_names = ["desk.internal"]\n')
    with pytest.raises(CallersFileError, match=r"'desk.internal'.*'a'.*'b'"):
        _parsed(text)


def test_a_caller_named_twice_is_refused() -> None:
    """TOML itself refuses a table given twice: the second entry never silently wins."""
    with pytest.raises(CallersFileError, match="not valid TOML"):
        _parsed(entry("desk", new_token(), '"read"') + entry("desk", new_token(), '"read", "paper", "live"'))


def test_caller_names_that_differ_only_in_case_are_refused() -> None:
    """The books name callers: "Desk" and "desk" in them would be two callers no reader can tell apart."""
    with pytest.raises(CallersFileError, match=r"'Desk'.*'desk'"):
        _parsed(entry("Desk", new_token(), '"read"') + entry("desk", new_token(), '"read"'))


def test_a_certificate_whose_names_are_two_callers_authenticates_as_neither(tmp_path: Path) -> None:
    path = tmp_path / "callers.toml"
    add_caller(path, "reader", [Permission.READ], certificate_names=["reader.internal"])
    add_caller(path, "desk", [Permission.READ, Permission.PAPER], certificate_names=["desk.internal"])
    auth = Authenticator(load_callers(path), local_allowed=False)
    both = {**SSL, "x509_subject_alternative_name": [b"reader.internal", b"desk.internal"]}
    with pytest.raises(Unauthenticated, match="'desk'.*'reader'"):
        auth.caller_for((), both)
    # Its CN and SAN naming one caller twice is that caller.
    same = {**SSL, "x509_subject_alternative_name": [b"desk.internal"], "x509_common_name": [b"desk.internal"]}
    assert auth.caller_for((), same).name == "desk"


# -- accounts as IB spells them ------------------------------------------------------------------


@pytest.mark.parametrize("written", ["du1", " DU1 "], ids=["lower-case", "spaces"])
def test_accounts_written_in_another_case_or_with_spaces_are_the_ib_accounts_everywhere(
    start_gateway, tmp_path: Path, written: str,
) -> None:
    """A hand-edited "du1" matched nothing in GetRun, WatchRun, CancelRun or SubmitRun, yet on
    MariaDB (case-insensitive collation) ListRuns showed DU1's runs: one caller, two answers."""
    path = tmp_path / "callers.toml"
    trader = add_caller(path, "trader", [Permission.READ, Permission.PAPER])
    desk = new_token()
    path.write_text(path.read_text() + entry("desk", desk, '"read", "paper"', f'accounts = ["{written}"]\n'))
    gw = start_gateway({"accounts": ["DU1", "DU2"]}, callers_file=path)

    def submit(token: str, name: str, account: str) -> str:
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, account=account, orders=[gw.order(name)])
        return gw.stub.SubmitRun(request, timeout=10, metadata=bearer(token)).run.run_id

    ours, theirs = submit(trader, "ours", "DU1"), submit(trader, "theirs", "DU2")
    listed = gw.stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=bearer(desk))
    assert [r.run_id for r in listed.runs] == [ours]
    assert gw.stub.GetRun(pb.GetRunRequest(run_id=ours), timeout=10, metadata=bearer(desk)).run.account == "DU1"
    assert refused(gw.stub.GetRun, pb.GetRunRequest(run_id=theirs), desk).code() == grpc.StatusCode.NOT_FOUND
    assert submit(desk, "desk", "DU1")


PASTED = new_token()


@pytest.mark.parametrize("accounts", ['[""]', '["DU 1"]', '["DU1;DU2"]', f'["DU1", "{PASTED}"]'],
                         ids=["empty", "inner-space", "two-in-one", "a-token-pasted"])
def test_an_account_that_is_no_ib_account_id_is_refused_without_repeating_it(accounts: str) -> None:
    with pytest.raises(CallersFileError, match="accounts") as refused:
        _parsed(entry("desk", new_token(), '"read"', f"accounts = {accounts}\n"))
    assert PASTED[8:20] not in str(refused.value)  # the error is logged: a token in it would be too


def test_an_empty_certificate_name_is_refused() -> None:
    with pytest.raises(CallersFileError, match="certificate_names"):
        _parsed(entry("desk", new_token(), '"read"', 'certificate_names = [""]\n'))


# -- execgw caller add ---------------------------------------------------------------------------


@pytest.mark.parametrize("accounts", ["", " , "], ids=["empty", "commas"])
def test_caller_add_with_no_account_in_accounts_is_refused_not_made_a_caller_of_every_account(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], accounts: str,
) -> None:
    """`--accounts "$DESK_ACCOUNTS"` with the variable unset gave a caller of every account."""
    path = tmp_path / "callers.toml"
    add_caller(path, "trader", [Permission.READ])
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["caller", "add", "desk", "--permissions", "read,paper", "--accounts", accounts,
                                   "--callers-file", str(path)])
    assert exited.value.code == 2
    assert "--accounts" in capsys.readouterr().err
    assert load_callers(path).names == ["trader"]
    with pytest.raises(CallersFileError, match="accounts"):
        add_caller(path, "desk", [Permission.READ], accounts=[])


def test_caller_add_spells_accounts_as_ib_does(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "callers.toml"
    args = build_parser().parse_args(["caller", "add", "desk", "--permissions", "read", "--accounts", " du1 ,DU2",
                                      "--callers-file", str(path)])
    assert args.func(args) == 0
    assert "accounts DU1,DU2" in load_callers(path).described()[0]


def test_caller_add_without_a_permission_is_an_error_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    path = tmp_path / "callers.toml"
    with pytest.raises(SystemExit) as exited:
        build_parser().parse_args(["caller", "add", "desk", "--permissions", ",", "--callers-file", str(path)])
    assert exited.value.code == 2 and "--permissions" in capsys.readouterr().err
    with pytest.raises(CallersFileError, match="permission"):
        add_caller(path, "desk", [])
    assert not path.exists()


# -- the file itself -----------------------------------------------------------------------------


def test_a_caller_removed_while_others_are_added_stays_removed(start_gateway, tmp_path: Path) -> None:
    """A leaked token revoked while provisioning adds callers: each edit wrote back the file as it
    had read it, so an add put the removed caller back and its token was served again."""
    path = tmp_path / "callers.toml"
    revoked = {f"leaked-{n}": add_caller(path, f"leaked-{n}", [Permission.READ]) for n in range(3)}
    gw = start_gateway(callers_file=path)
    assert gw.stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=bearer(revoked["leaked-0"])).runs == []

    added: dict[str, str] = {}

    def add(name: str, at_once: threading.Barrier) -> None:
        at_once.wait()
        added[name] = add_caller(path, name, [Permission.READ])

    def revoke(name: str, at_once: threading.Barrier) -> None:
        at_once.wait()
        remove_caller(path, name)

    for leaked in revoked:
        at_once = threading.Barrier(9)
        edits = [threading.Thread(target=add, args=(f"{leaked}-desk-{i}", at_once)) for i in range(8)]
        edits.append(threading.Thread(target=revoke, args=(leaked, at_once)))
        for edit in edits:
            edit.start()
        for edit in edits:
            edit.join()

    assert sorted(load_callers(path).names) == sorted(added)
    for name, token in revoked.items():
        error = refused(gw.stub.ListRuns, pb.ListRunsRequest(), token)
        assert error.code() == grpc.StatusCode.UNAUTHENTICATED, f"{name}'s revoked token was served"
    for token in added.values():
        assert gw.stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=bearer(token)).runs == []


def test_a_callers_file_others_may_write_is_warned_about(
    start_gateway, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    """Whoever may write the file may add a caller with `live`: said at start, naming the file."""
    caplog.set_level(logging.WARNING, logger="execgw")
    path = tmp_path / "callers.toml"
    token = add_caller(path, "desk", [Permission.READ])
    path.chmod(0o666)
    gw = start_gateway(callers_file=path)
    assert gw.stub.ListRuns(pb.ListRunsRequest(), timeout=10, metadata=bearer(token)).runs == []
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING and str(path) in r.getMessage()]
    assert warned and "666" in warned[0], warned
    assert stat.S_IMODE(path.stat().st_mode) == 0o666  # said, not changed: the operator decides


def _parsed(text: str) -> Callers:
    return parse_callers(text.encode(), Path("callers.toml"))
