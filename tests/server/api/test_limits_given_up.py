"""Pre-trade limits against a caller that tries to get around them: by giving up on its SubmitRun
once the run is under way (the engine records and sends it all the same), by spelling a denied
symbol with more spaces, or with quantities at the edges of a double. End to end (gRPC → gateway →
ibapi → simulator) on SQLite and MariaDB; nothing of a refused run is written or sent."""

from __future__ import annotations

import asyncio
import math
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from execgw.v1 import execution_pb2 as pb

pytestmark = pytest.mark.timeout(90)

ADMISSION_SECONDS = 1.5  # how long the engine takes to record a run here
GIVES_UP_AFTER = 0.5  # the caller's deadline: well inside that


def _violations(error: grpc.RpcError) -> list[tuple[str, str]]:
    status = rpc_status.from_call(error)
    assert status is not None
    failure = error_details_pb2.PreconditionFailure()
    assert any(detail.Unpack(failure) for detail in status.details)
    return [(v.type, v.subject) for v in failure.violations]


def _refused(live, *orders: pb.OrderSpec, code: grpc.StatusCode) -> grpc.RpcError:  # type: ignore[no-untyped-def]
    before = live.counts()[:2]  # runs and orders: an earlier run's fills and events may still come in
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(*orders)
    assert refused.value.code() == code, refused.value.details()
    assert live.counts()[:2] == before, "a refused run writes nothing"
    sent = {o.client_order_id for o in orders}
    assert not [o for o in live.sim.received_orders() if o.order_ref in sent], "a refused run reached IB"
    return refused.value


def _slow_admissions(live, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    """Every run takes ADMISSION_SECONDS to be recorded, as on a loaded database."""
    engine = live.gateway.gateway.engine
    admit = engine._admit

    async def slowly(*args, **kwargs):  # type: ignore[no-untyped-def]
        await asyncio.sleep(ADMISSION_SECONDS)
        return await admit(*args, **kwargs)

    monkeypatch.setattr(engine, "_admit", slowly)


def _give_up_on(live, order: pb.OrderSpec) -> None:  # type: ignore[no-untyped-def]
    request = pb.SubmitRunRequest(mode=pb.TRADING_MODE_PAPER, orders=[order])
    with pytest.raises(grpc.RpcError) as gave_up:
        live.stub.SubmitRun(request, timeout=GIVES_UP_AFTER)
    assert gave_up.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED


def test_a_run_whose_caller_gave_up_waiting_still_counts_toward_its_rate(
    start_gateway, eventually, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The place in the rate window was given back when the call was cancelled, though the engine
    went on to record and send the run: cancelling each SubmitRun once under way started runs
    without limit."""
    live = start_gateway(max_runs_per_minute_per_caller=1)
    _slow_admissions(live, monkeypatch)
    _give_up_on(live, live.order("gave-up"))
    eventually(lambda: live.counts()[0] == 1, what="the run recorded all the same")
    live.sim.wait_for_order(live.order("gave-up").client_order_id, timeout=10)

    error = _refused(live, live.order("next"), code=grpc.StatusCode.RESOURCE_EXHAUSTED)
    assert _violations(error) == [("max_runs_per_minute_per_caller", "max_runs_per_minute_per_caller")]


def test_a_run_whose_caller_gave_up_waiting_still_holds_its_open_run_place(
    start_gateway, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The open-run count was let go when the call was cancelled, before the engine had recorded
    the run: the next SubmitRun counted no run open and both ended up RUNNING."""
    live = start_gateway({"default": {"outcome": "rest"}}, max_open_runs=1)
    _slow_admissions(live, monkeypatch)
    _give_up_on(live, live.order("gave-up"))
    # At once, while the given-up run is still being recorded: that is when its place was free.
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("next"))
    assert refused.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, refused.value.details()
    assert _violations(refused.value) == [("max_open_runs", "max_open_runs")]
    live.sim.wait_for_order(live.order("gave-up").client_order_id, timeout=10)
    assert live.counts()[:2] == (1, 1), "only the given-up run is recorded"
    assert live.order("next").client_order_id not in [o.order_ref for o in live.sim.received_orders()]


def _submit_at_once(live, names: list[str]) -> list[grpc.StatusCode]:  # type: ignore[no-untyped-def]
    def one(name: str) -> grpc.StatusCode:
        try:
            live.submit(live.order(name))
        except grpc.RpcError as error:
            return error.code()
        return grpc.StatusCode.OK

    with ThreadPoolExecutor(len(names)) as pool:
        return list(pool.map(one, names))


def test_submits_at_once_never_overrun_the_most_open_runs(start_gateway) -> None:
    live = start_gateway({"default": {"outcome": "rest"}}, max_open_runs=3)
    codes = _submit_at_once(live, [f"at-once-{i}" for i in range(12)])
    assert sorted(codes, key=str) == sorted([grpc.StatusCode.OK] * 3 + [grpc.StatusCode.RESOURCE_EXHAUSTED] * 9, key=str)
    assert live.counts()[0] == 3


def test_submits_at_once_never_overrun_the_rate(start_gateway) -> None:
    live = start_gateway(max_runs_per_minute_per_caller=3)
    codes = _submit_at_once(live, [f"at-once-{i}" for i in range(12)])
    assert codes.count(grpc.StatusCode.OK) == 3 and codes.count(grpc.StatusCode.RESOURCE_EXHAUSTED) == 9
    assert live.counts()[0] == 3


def test_refused_runs_do_not_count_toward_the_rate(start_gateway) -> None:
    """Refused by validation, by a limit, by the account guard, or a retry of an existing run:
    none starts a run, none takes the caller's one run of the minute."""
    live = start_gateway({"accounts": ["DU1111111"]}, max_runs_per_minute_per_caller=1, symbol_denylist=["GME"],
                         paper_max_order_quantity=5)
    for order, account, code in [
        (live.order("invalid", quantity=-1), "", grpc.StatusCode.INVALID_ARGUMENT),
        (live.order("denied", "GME", quantity=1), "", grpc.StatusCode.FAILED_PRECONDITION),
        (live.order("too-big", quantity=6), "", grpc.StatusCode.FAILED_PRECONDITION),
        (live.order("not-managed", quantity=1), "DU9999999", grpc.StatusCode.FAILED_PRECONDITION),
    ]:
        with pytest.raises(grpc.RpcError) as refused:
            live.submit(order, account=account)
        assert refused.value.code() == code, refused.value.details()
    assert live.counts()[0] == 0
    live.submit(live.order("first", quantity=1))
    _refused(live, live.order("second", quantity=1), code=grpc.StatusCode.RESOURCE_EXHAUSTED)


@pytest.mark.parametrize("limit", ["max_runs_per_minute_per_caller", "max_open_runs"])
def test_a_retry_at_the_limit_is_answered_with_its_run(start_gateway, limit: str) -> None:
    """A client that lost the answer (or gave up waiting) retries with the same orders: the run
    exists and trades, and the retry must say so, not RESOURCE_EXHAUSTED "retry in 60s"."""
    live = start_gateway({"default": {"outcome": "rest"}}, **{limit: 1})
    first = live.submit(live.order("first"), deadline=60)
    again = live.submit(live.order("first"), deadline=60)
    assert again.existing and again.run.run_id == first.run.run_id
    _refused(live, live.order("second"), code=grpc.StatusCode.RESOURCE_EXHAUSTED)  # a new run still is refused


@pytest.mark.parametrize("written", ["BRK  B", " brk b ", "BRK\tB"], ids=["two-spaces", "lower-case", "tab"])
def test_a_denied_symbol_spelled_with_other_spaces_is_denied(start_gateway, written: str) -> None:
    live = start_gateway(symbol_denylist=["BRK B"])
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("brk", written))
    # A tab is no symbol at all (INVALID_ARGUMENT); the rest are the denied symbol.
    assert refused.value.code() in (grpc.StatusCode.FAILED_PRECONDITION, grpc.StatusCode.INVALID_ARGUMENT)
    if refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION:
        assert _violations(refused.value) == [("symbol_denylist", "orders[0].symbol")]
    assert live.counts() == before and live.sim.received_orders() == []


def test_an_allowed_symbol_spelled_with_other_spaces_is_allowed(start_gateway) -> None:
    live = start_gateway(symbol_allowlist=["BRK B"])
    run, _ = live.run_to_end(live.order("brk", "BRK  B"))
    assert run.status == pb.RUN_STATUS_SUCCESS


@pytest.mark.parametrize("quantity", [1e308, math.inf, math.nan, -0.0, 0.0, -1.0, 5e-324, 6.00001],
                         ids=repr)
def test_quantities_at_the_edges_of_a_double_never_trade(start_gateway, quantity: float) -> None:
    """Validation refuses what is no quantity (INVALID_ARGUMENT) before the limits compare it
    (NaN > 5 is False: a limit alone would let NaN through)."""
    live = start_gateway(paper_max_order_quantity=5)
    before = live.counts()
    with pytest.raises(grpc.RpcError) as refused:
        live.submit(live.order("edge", quantity=quantity))
    assert refused.value.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.FAILED_PRECONDITION)
    assert live.counts() == before and live.sim.received_orders() == []
