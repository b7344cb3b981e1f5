"""The gateway's log: JSON lines (or key=value text) with the ids of every order state change
and execution, levels per component, and never a secret."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from execgw.server import logs
from execgw.server.api.callers import Permission, add_caller
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

EXECGW = Path(sys.executable).parent / "execgw"


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    entry = logging.LogRecord("execgw.test", logging.INFO, __file__, 1, message, args, None)
    entry.__dict__.update(extra)
    return entry


def test_text_is_key_value_with_the_calls_fields_and_json_is_one_object_per_line():
    entry = record("order %s filled", "desk-1", run_id="r-1", client_order_id="desk-1", ib_order_id=7)
    text = logs.KeyValueFormatter().format(entry)
    assert text.startswith("ts=") and ' level=INFO logger=execgw.test msg="order desk-1 filled" ' in text
    assert text.endswith("run_id=r-1 client_order_id=desk-1 ib_order_id=7")
    line = json.loads(logs.JsonFormatter().format(entry))
    assert line["msg"] == "order desk-1 filled" and line["ib_order_id"] == 7 and line["run_id"] == "r-1"


@pytest.mark.parametrize("leak", [
    "authorization: Bearer s3cr3t-token-value", "mysql+pymysql://gw:s3cr3t-token-value@db/execgw",
    "password=s3cr3t-token-value", "{'token': 's3cr3t-token-value'}",
])
def test_secrets_are_masked_in_messages_fields_and_tracebacks(leak):
    try:
        raise RuntimeError(leak)
    except RuntimeError:
        entry = record("failed: %s", leak, detail=leak)
        entry.exc_info = sys.exc_info()
    for formatter in (logs.KeyValueFormatter(), logs.JsonFormatter()):
        assert "s3cr3t-token-value" not in formatter.format(entry)


FRAGMENTS = ["Bearer ", "bEaReR\t", "authorization: ", "Authorization=", "'authorization': '", "password=",
             "PASSWD: ", "token=", "Token:'", "mysql+pymysql://", "user:", "pw@", "host/db", "execgw_",
             "abc123", " ", "=", '"', ",", ";", "&", "@", ":", "/", "run-7", "42.5", "DU1234567"]


@given(st.lists(st.sampled_from(FRAGMENTS), max_size=12).map("".join))
@settings(max_examples=400, deadline=None)
def test_the_quick_scan_skips_only_texts_no_pattern_would_change(text: str) -> None:
    """mask_secrets first looks for the words every pattern needs; skipping the patterns for a
    text without them must never leave something they would have masked."""
    full = text
    for pattern, replacement in logs._SECRETS:
        full = pattern.sub(replacement, full)
    assert logs.mask_secrets(text) == full


@given(st.text(alphabet=st.sampled_from(list('ab =\n\t"\\é€😀\u2028\x00\x1f')) | st.characters(), max_size=40))
@settings(max_examples=500, deadline=None)
def test_a_text_field_is_quoted_as_json_dumps_quotes_it(text: str) -> None:
    """The text format quotes a value with spaces, quotes, = or line breaks as a JSON string
    (json's C quoting, without building json.dumps' encoder per value): the same text."""
    quoted = logs._text_value(text)
    if not text or any(c in text for c in ' "=\n\t'):
        assert quoted == json.dumps(text, ensure_ascii=False)
    else:
        assert quoted == text


@given(st.lists(st.one_of(st.lists(st.sampled_from(FRAGMENTS), max_size=8).map("".join), st.integers(),
                          st.floats(allow_nan=False), st.booleans(), st.none()), min_size=1, max_size=6))
@settings(max_examples=300, deadline=None)
def test_a_field_is_written_the_same_whether_its_text_was_rendered_before_or_not(values: list[object]) -> None:
    """Field texts are rendered once and kept: the kept text must be what rendering it anew
    (masked, then quoted) gives, for texts with secrets in them too; numbers are written as str()."""
    for value in values * 2:  # the second pass is served from what the first kept
        expected = str(value) if type(value) in (int, float) else logs._text_value(logs.mask_secrets(str(value)))
        assert logs._field_text(value) == expected


@given(st.floats(min_value=0, max_value=4102444800, allow_nan=False))
@settings(max_examples=500, deadline=None)
def test_the_timestamp_is_the_utc_millisecond_of_the_record(created: float) -> None:
    """Each second's text is kept for the lines after it; every line still shows its own
    millisecond (truncated), in UTC, as ISO 8601 with a Z."""
    from datetime import UTC, datetime

    entry = record("x")
    entry.created = created
    expected = datetime.fromtimestamp(int(created * 1000) / 1000 + 1e-7, UTC)
    assert logs._timestamp(entry) == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    entry.created = created + 0.5
    later = datetime.fromtimestamp(int((created + 0.5) * 1000) / 1000 + 1e-7, UTC)
    assert logs._timestamp(entry) == later.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_a_level_per_component_and_a_bad_level_refused():
    logs.configure("text", {"execgw.server.ib": "debug", "execgw.journal": "WARNING"})
    try:
        assert logging.getLogger("execgw.server.ib.session").getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("execgw.journal").getEffectiveLevel() == logging.WARNING
        assert logging.getLogger("execgw.server.engine").getEffectiveLevel() == logging.INFO
        with pytest.raises(ValueError, match="LOUD"):
            logs.configure("text", {"execgw": "LOUD"})
    finally:
        for name in ("execgw.server.ib", "execgw.journal"):
            logging.getLogger(name).setLevel(logging.NOTSET)
        _unconfigure()


def _unconfigure() -> None:
    """Back to no handler: the writer thread stopped after writing what it holds."""
    logs.stop()
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)


class BlockedStream(io.StringIO):
    """A stderr whose writes wait until `opened` is set (a full pipe nobody reads)."""

    def __init__(self) -> None:
        super().__init__()
        self.opened = threading.Event()

    def write(self, text: str) -> int:
        self.opened.wait(30)
        return super().write(text)


def _configure_on_a_blocked_stderr(monkeypatch: pytest.MonkeyPatch, queued_lines: int) -> BlockedStream:
    stream = BlockedStream()
    monkeypatch.setattr(sys, "stderr", stream)
    monkeypatch.setattr(logs, "QUEUED_LINES", queued_lines)
    logs.configure("text")
    return stream


def test_lines_are_written_by_a_thread_of_their_own_in_order_rendered_at_the_call(monkeypatch):
    """The caller (the event loop) only queues a line: a stderr that blocks costs it nothing.
    Each message is rendered when logged, not when written; fields and tracebacks are written
    as before; every queued line is written at stop; past QUEUED_LINES new lines are dropped
    and a line says how many."""
    stream = _configure_on_a_blocked_stderr(monkeypatch, queued_lines=50)
    try:
        log = logging.getLogger("execgw.test.queue")
        holdings = ["AAPL"]
        started = time.monotonic()
        log.info("holdings %s", holdings, extra={"run_id": "r-1"})
        holdings.append("MSFT")  # after the call: not in its line
        try:
            raise RuntimeError("password=s3cr3t-token-value")
        except RuntimeError:
            log.exception("failed")
        for number in range(100):
            log.info("line %d", number)
        assert time.monotonic() - started < 1.0, "the caller waited for stderr"
        assert stream.getvalue() == ""
        stream.opened.set()
        logs.stop()
        lines = stream.getvalue().splitlines()
        assert 'msg="holdings [\'AAPL\']" run_id=r-1' in lines[0]
        assert "msg=failed" in lines[1] and "exc=" in lines[1] and "RuntimeError" in lines[1]
        assert "s3cr3t-token-value" not in stream.getvalue()
        written = [int(line.split("msg=\"line ")[1].split('"')[0]) for line in lines if 'msg="line ' in line]
        assert written == list(range(len(written))), "in order, none skipped before the drops"
        assert 40 <= len(written) < 100, "some were dropped past the bound"
    finally:
        _unconfigure()


def _until_quiet(stream: io.StringIO) -> None:
    """Until the writer thread has written what it held (nothing new for 0.2 s)."""
    deadline, written = time.monotonic() + 10, -1
    while written != len(stream.getvalue()):
        assert time.monotonic() < deadline
        written = len(stream.getvalue())
        time.sleep(0.2)


def test_the_count_of_dropped_lines_is_written_when_there_is_room_again(monkeypatch):
    stream = _configure_on_a_blocked_stderr(monkeypatch, queued_lines=5)
    try:
        log = logging.getLogger("execgw.test.queue")
        for number in range(20):
            log.info("line %d", number)
        stream.opened.set()
        _until_quiet(stream)
        log.info("room again")
        logs.stop()
        lines = stream.getvalue().splitlines()
        dropped = [line for line in lines if "log lines dropped" in line]
        assert len(dropped) == 1 and "level=WARNING" in dropped[0]
        count = int(dropped[0].split('msg="')[1].split(" ")[0])
        assert count == 20 - len([line for line in lines if 'msg="line ' in line]) and count > 0
        assert lines[-2:] == [dropped[0], lines[-1]] and 'msg="room again"' in lines[-1]
    finally:
        _unconfigure()


def test_json_lines_of_a_run_name_every_state_change_and_execution(
    tmp_path: Path, free_port: Callable[[], int], eventually: Callable[..., None]
) -> None:
    """`execgw serve --log-format json` (embedded simulator, SQLite): a two-order run, then every
    line of the log parses; each order's state changes and each execution are there with the run,
    client_order_id, IB order id and permId (and execId), matching the database; no token is."""
    callers = tmp_path / "callers.toml"
    token = add_caller(callers, "desk", [Permission.READ, Permission.PAPER])
    target = f"127.0.0.1:{free_port()}"
    log_file = tmp_path / "serve.log"
    environment = {k: v for k, v in os.environ.items() if not k.startswith("EXECGW_")}
    with log_file.open("wb") as out:
        process = subprocess.Popen(
            [str(EXECGW), "serve", "--listen", target, "--log-format", "json"], cwd=tmp_path, stdout=out,
            stderr=subprocess.STDOUT, env={**environment, "EXECGW_CALLERS_FILE": str(callers)})
    try:
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.ExecutionServiceStub(channel)
            as_desk = (("authorization", f"Bearer {token}"),)

            def served() -> bool:
                try:
                    stub.ListRuns(pb.ListRunsRequest(), timeout=2, metadata=as_desk)
                    return True
                except grpc.RpcError:
                    return False

            eventually(served, 30, "the gateway never served")
            orders = [pb.OrderSpec(client_order_id=f"logged-{n}", symbol="AAPL", side=pb.ORDER_SIDE_BUY, quantity=5)
                      for n in ("a", "b")]
            run_id = stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=orders),
                                    timeout=10, metadata=as_desk).run.run_id
            for _ in stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30, metadata=as_desk):
                pass
            run = stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=10, metadata=as_desk).run
            with pytest.raises(grpc.RpcError):  # a wrong token is refused, and logged, never quoted
                stub.ListRuns(pb.ListRunsRequest(), timeout=5, metadata=(("authorization", "Bearer wrong-token-xyz"),))
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    text = log_file.read_text()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]  # every line is JSON
    assert all({"ts", "level", "logger", "msg"} <= line.keys() for line in lines)
    assert token not in text and "wrong-token-xyz" not in text
    assert run.status == pb.RUN_STATUS_SUCCESS
    mine = [line for line in lines if line.get("run_id") == run_id and line["logger"] == "execgw.journal"]
    for order in run.orders:
        statuses = [line for line in mine if line["event"] == "order_status"
                    and line["client_order_id"] == order.spec.client_order_id]
        assert statuses[-1]["status"] == "FILLED"
        assert statuses[-1]["ib_order_id"] == order.ib_order_id > 0 and statuses[-1]["perm_id"] == order.ib_perm_id > 0
        executions = [line for line in mine if line["event"] == "fill"
                      and line["client_order_id"] == order.spec.client_order_id]
        assert sorted(line["exec_id"] for line in executions) == sorted(f.exec_id for f in order.fills)
        assert all(line["ib_order_id"] == order.ib_order_id and line["perm_id"] == order.ib_perm_id
                   for line in executions)
    assert [line["status"] for line in mine if line["event"] == "run_status"][-1] == "SUCCESS"
