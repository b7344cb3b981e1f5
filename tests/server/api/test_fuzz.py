"""Bad input, generated: hostile requests for every RPC against one real gateway per database
(benchmarks/fuzz.py holds the strategies and the properties; it runs many more examples).

Whatever arrives, the answer is a status the RPC documents (never INTERNAL or UNKNOWN), a refused
SubmitRun writes nothing and sends nothing to IB, and the server goes on serving. Also here: the
request size bound, and one caller's watch streams never using up another's places. The runs are
derandomized (fixed examples, no example database), so CI sees the same examples every time."""

from __future__ import annotations

import importlib.util
import sys
import time
import uuid
from pathlib import Path

import grpc
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from execgw.server.api.callers import Permission, add_caller
from execgw.server.config import ORDER_BYTES, REQUEST_OVERHEAD_BYTES, Settings
from execgw.v1 import execution_pb2 as pb

_PATH = Path(__file__).resolve().parents[3] / "benchmarks" / "fuzz.py"
_spec = importlib.util.spec_from_file_location("execgw_benchmarks_fuzz", _PATH)
assert _spec is not None and _spec.loader is not None
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # dataclasses look their module up by name
_spec.loader.exec_module(fuzz)

# Examples per RPC: SQLite is the full pass, MariaDB a smaller one (its answers differ only in
# the store's queries, and every example costs a few round trips more there).
EXAMPLES = {"sqlite": 150, "mysql": 40}
RPCS = [*fuzz.METHODS, "raw"]


@pytest.fixture(scope="module", params=["sqlite", pytest.param("mysql", marks=pytest.mark.mysql)])
def target(request, tmp_path_factory):
    folder = tmp_path_factory.mktemp("fuzz")
    if request.param == "sqlite":
        url, drop = f"sqlite:///{folder / 'fuzz.sqlite3'}", None
    else:
        server = request.getfixturevalue("mysql_server_url")
        name = f"execgw_fuzz_{uuid.uuid4().hex[:10]}"
        drop = create_engine(server)
        with drop.connect() as conn:
            conn.execute(text(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4"))
        url = make_url(server).set(database=name).render_as_string(hide_password=False)
    try:
        with fuzz.fuzz_target(url, folder) as gateway:
            gateway.backend = request.param
            yield gateway
    finally:
        if drop is not None:
            with drop.connect() as conn:
                conn.execute(text(f"DROP DATABASE IF EXISTS `{name}`"))
            drop.dispose()


def order(client_order_id: str, **fields) -> pb.OrderSpec:
    return pb.OrderSpec(client_order_id=client_order_id, **{"symbol": "AAPL", "side": pb.ORDER_SIDE_BUY,
                                                            "quantity": 1, **fields})


def explicit_examples(target, rpc: str) -> tuple:
    """Each defect the fuzzing found, as the example that showed it (kept whatever hypothesis draws)."""
    trader = fuzz.trader(target)
    if rpc == "SubmitRun":
        return (
            # `$` matched before a trailing newline: accepted, and sent to IB as the orderRef.
            (pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order(fuzz.FRESH + "\n")]), trader),
            (pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, account=fuzz.SIM_ACCOUNT + "\n",
                                 orders=[order(fuzz.FRESH)]), trader),
        )
    if rpc == "raw":
        # Not UTF-8 in a string field: grpc.aio answered its DecodeError with UNKNOWN.
        return tuple(((method, fuzz.not_utf8(method)), trader) for method in fuzz.METHODS)
    return ()


@pytest.mark.timeout(300)
@pytest.mark.parametrize("rpc", RPCS)
def test_hostile_requests_get_a_documented_status_and_change_nothing(target, rpc):
    fuzz.fuzz(target, rpc, examples=EXAMPLES[target.backend], explicit=explicit_examples(target, rpc))
    assert all(code in fuzz.ALLOWED[method] for method, code in target.codes)


# -- the defects, as plain tests ---------------------------------------------------------------


def submit_refused(target, request: pb.SubmitRunRequest) -> grpc.RpcError:
    before = target.books()
    with pytest.raises(grpc.RpcError) as caught:
        target.channel.unary_unary(fuzz.SERVICE + "SubmitRun")(
            request.SerializeToString(), timeout=10, metadata=fuzz.trader(target).metadata)
    assert target.books() == before, "a refused SubmitRun must write nothing and send nothing"
    return caught.value


@pytest.mark.parametrize(("field", "request_"), [
    ("orders[0].client_order_id", pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order("nl-1\n")])),
    ("account", pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, account="DU1234567\n", orders=[order("nl-2")])),
])
def test_a_trailing_newline_is_invalid_argument_and_never_reaches_ib(target, field, request_):
    error = submit_refused(target, request_)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error.details()
    assert error.details().startswith(f"invalid request: {field}:")


@pytest.mark.parametrize("method", fuzz.METHODS)
def test_bytes_that_are_not_the_request_are_invalid_argument_for_every_method(target, method):
    call = (target.channel.unary_stream if method == "WatchRun" else target.channel.unary_unary)(fuzz.SERVICE + method)
    for payload in (fuzz.not_utf8(method), b"\xff\xff\xff\xff"):  # bad UTF-8 in a string; a corrupt wire format
        before = target.books()
        with pytest.raises(grpc.RpcError) as caught:
            list(call(payload, timeout=10, metadata=fuzz.trader(target).metadata)) if method == "WatchRun" else \
                call(payload, timeout=10, metadata=fuzz.trader(target).metadata)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT, caught.value.details()
        assert "request:" in caught.value.details() and f"execgw.v1.{method}Request" in caught.value.details()
        assert target.books() == before
        # Without a credential the answer is still UNAUTHENTICATED: nothing is decoded for a stranger.
        with pytest.raises(grpc.RpcError) as stranger:
            list(call(payload, timeout=10)) if method == "WatchRun" else call(payload, timeout=10)
        assert stranger.value.code() == grpc.StatusCode.UNAUTHENTICATED


# -- message size --------------------------------------------------------------------------------


def test_a_request_above_max_request_bytes_is_resource_exhausted_from_grpc_and_writes_nothing(target):
    bound = fuzz.MAX_REQUEST_BYTES
    for size, expected in ((bound + 1, grpc.StatusCode.RESOURCE_EXHAUSTED),
                           (bound - 1, grpc.StatusCode.INVALID_ARGUMENT)):  # the servicer's answer: a long note
        request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order(f"size-{size}")], submitted_by="n")
        request.submitted_by = "n" * (1 + size - request.ByteSize() - 2)  # its length takes a byte more
        assert request.ByteSize() == size
        error = submit_refused(target, request)
        assert error.code() == expected, error.details()
    assert "larger than max" in submit_refused(target, pb.SubmitRunRequest(submitted_by="x" * bound)).details()
    target.still_serves()


def test_the_default_bound_holds_the_largest_valid_run_and_settings_that_do_not_fit_are_refused():
    largest = pb.SubmitRunRequest(
        mode=pb.TRADING_MODE_PAPER, account="A" * 32, submitted_by="s" * 128, confirm_live="LIVE",
        orders=[pb.OrderSpec(client_order_id=f"{i:064d}", symbol="S" * 32, sec_type="STK", exchange="ENEXT.BE",
                             primary_exchange="ENEXT.BE", currency="USD", side=pb.ORDER_SIDE_SELL,
                             quantity=99_999.9999, order_type="MKT") for i in range(100)],
    )
    largest.deadline.FromSeconds(3600)
    assert largest.ByteSize() < REQUEST_OVERHEAD_BYTES + 100 * ORDER_BYTES <= Settings().max_request_bytes
    assert largest.ByteSize() // 100 < 160  # what the setting's description says of one order
    assert Settings().max_request_bytes == 256 * 1024
    with pytest.raises(ValueError, match="cannot hold a run of max_orders_per_run 2000"):
        Settings(max_orders_per_run=2000)
    Settings(max_orders_per_run=2000, max_request_bytes=2 * 1024 * 1024)


# -- one caller cannot starve another --------------------------------------------------------------


def test_one_callers_watch_streams_do_not_use_up_another_callers_places(start_gateway, tmp_path, eventually):
    """Tokens on one loopback address: the per-caller bound counts the authenticated caller, so
    caller A holding all its places leaves B's untouched, and B's runs are submitted and fill."""
    callers = tmp_path / "callers.toml"
    a = add_caller(callers, "watcher-a", [Permission.READ])
    b = add_caller(callers, "trader-b", [Permission.READ, Permission.PAPER])
    as_a, as_b = (("authorization", f"Bearer {a}"),), (("authorization", f"Bearer {b}"),)
    live = start_gateway({"symbols": {"HOLD": {"outcome": "rest"}}}, callers_file=callers,
                         max_watch_streams=50, max_watch_streams_per_caller=3, heartbeat_seconds=1)
    resting = live.stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
        live.order("hold", symbol="HOLD")]), timeout=10, metadata=as_b).run.run_id

    streams = []
    for _ in range(3):
        stream = live.stub.WatchRun(pb.WatchRunRequest(run_id=resting), timeout=60, metadata=as_a)
        assert next(stream).HasField("event")
        streams.append(stream)
    for _ in range(2):  # and beyond: refused, saying whose bound it is
        with pytest.raises(grpc.RpcError) as refused:
            next(live.stub.WatchRun(pb.WatchRunRequest(run_id=resting), timeout=10, metadata=as_a))
        assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "too many WatchRun streams from caller 'watcher-a': 3 are open" in refused.value.details()

    started = time.monotonic()
    for index in range(2):
        run_id = live.stub.SubmitRun(pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[
            live.order(f"b-{index}", quantity=5)]), timeout=10, metadata=as_b).run.run_id
        events = [m.event for m in live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=30, metadata=as_b)
                  if m.HasField("event")]
        assert events[-1].run_status.status == pb.RUN_STATUS_SUCCESS
        assert [f.filled_qty for f in live.fills(run_id)] == [5]
    assert time.monotonic() - started < 20
    for stream in streams:
        stream.cancel()
