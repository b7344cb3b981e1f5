"""WatchRun's bounds: where a stream may start (after_sequence), how many may be open in total and
per caller, that an ended stream frees its place, and that a stream ended by gRPC is logged."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from execgw.server.api.watch_limits import TooManyStreams, WatchSlots, caller_of
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

RESTING = {"default": {"outcome": "rest"}}


def open_stream(live, run_id: str, after: int = 0, timeout: float = 20) -> Iterator[pb.WatchRunResponse]:
    """A stream the server has admitted: its first message (a replayed event) has arrived."""
    call = live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=after), timeout=timeout)
    first = next(call)
    assert first.HasField("event")
    return call


def refusal(live, run_id: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        next(live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id), timeout=10))
    return caught.value


def test_after_sequence_beyond_a_live_runs_last_is_out_of_range_naming_the_field(start_gateway):
    live = start_gateway({"default": {"fills": 8, "fill_interval": 0.4}})
    run_id = live.submit(live.order("ahead", quantity=8)).run.run_id
    last = live.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=5).run.last_sequence
    assert live.stub.GetRun(pb.GetRunRequest(run_id=run_id), timeout=5).run.status == pb.RUN_STATUS_RUNNING

    with pytest.raises(grpc.RpcError) as caught:
        list(live.stub.WatchRun(pb.WatchRunRequest(run_id=run_id, after_sequence=last + 50), timeout=8))
    error = caught.value
    assert error.code() == grpc.StatusCode.OUT_OF_RANGE, error.details()
    assert "after_sequence" in error.details()
    status = rpc_status.from_call(error)
    assert status is not None
    details = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(details)
    assert [v.field for v in details.field_violations] == ["after_sequence"]

    # A watcher resuming from what it did receive still follows the run to its final status.
    events = live.watch(run_id, after=last, timeout=30)
    assert events and events[-1].run_status.final
    assert [e.sequence for e in events] == list(range(last + 1, events[-1].sequence + 1))


def test_after_sequence_beyond_a_finished_runs_last_is_out_of_range(live):
    run, _ = live.run_to_end(live.order("done"))
    assert [e.sequence for e in live.watch(run.run_id, after=run.last_sequence)] == []
    with pytest.raises(grpc.RpcError) as caught:
        list(live.stub.WatchRun(pb.WatchRunRequest(run_id=run.run_id, after_sequence=run.last_sequence + 1),
                                timeout=8))
    assert caught.value.code() == grpc.StatusCode.OUT_OF_RANGE


def test_streams_beyond_the_total_are_refused_and_an_ended_stream_frees_its_place(start_gateway, eventually):
    live = start_gateway(RESTING, max_watch_streams=2, max_watch_streams_per_caller=10)
    run_id = live.submit(live.order("open")).run.run_id
    first, second = open_stream(live, run_id), open_stream(live, run_id)

    refused = refusal(live, run_id)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "2 are open, the most it serves" in refused.details()

    first.cancel()  # the client goes away: the server notices and gives the place back

    def admitted() -> bool:
        try:
            open_stream(live, run_id, timeout=5).cancel()
            return True
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            return False

    eventually(admitted, 10, "a cancelled stream's place was not freed")
    second.cancel()


def test_streams_beyond_the_per_caller_bound_are_refused_and_a_finished_stream_frees_its_place(
    start_gateway, eventually
):
    live = start_gateway({"default": {"fills": 3, "fill_interval": 0.5}},
                         max_watch_streams=100, max_watch_streams_per_caller=2)
    run_id = live.submit(live.order("busy", quantity=3)).run.run_id
    first, second = open_stream(live, run_id), open_stream(live, run_id)

    refused = refusal(live, run_id)
    assert refused.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert "too many WatchRun streams from ipv4:127.0.0.1: 2 are open" in refused.details()

    # Both streams end by themselves with the run's final status; their places are free again.
    assert list(first)[-1].event.run_status.final and list(second)[-1].event.run_status.final
    eventually(lambda: len(live.watch(run_id)) > 0, 10, "a finished stream's place was not freed")


def test_a_stream_ended_by_the_client_is_logged_with_the_reason(start_gateway, eventually, caplog):
    caplog.set_level(logging.INFO, logger="execgw.server.api.service")
    live = start_gateway(RESTING)
    run_id = live.submit(live.order("gone")).run.run_id
    open_stream(live, run_id).cancel()

    def logged() -> bool:
        return any(f"WatchRun {run_id}" in r.getMessage() and "client cancelled" in r.getMessage()
                   for r in caplog.records)

    eventually(logged, 10, "the cancelled stream was not logged")


def test_one_callers_streams_do_not_use_up_anothers_places() -> None:
    slots = WatchSlots(total=3, per_caller=2)
    a1, a2 = slots.take("ipv4:10.0.0.1"), slots.take("ipv4:10.0.0.1")
    with pytest.raises(TooManyStreams, match="from ipv4:10.0.0.1"):
        slots.take("ipv4:10.0.0.1")
    b1 = slots.take("ipv4:10.0.0.2")
    with pytest.raises(TooManyStreams, match="on this gateway"):
        slots.take("ipv4:10.0.0.3")
    a1.release()
    a1.release()  # every way out of a stream may release; only the first counts
    assert slots.open_for("ipv4:10.0.0.1") == 1 and slots.open_streams == 2
    slots.take("ipv4:10.0.0.3")
    a2.release()
    b1.release()
    assert slots.open_streams == 1


class FakeContext:
    def __init__(self, peer: str, identities: list[bytes] | None = None) -> None:
        self._peer, self._identities = peer, identities

    def peer(self) -> str:
        return self._peer

    def peer_identities(self) -> list[bytes] | None:
        return self._identities


@pytest.mark.parametrize(("peer", "identities", "caller"), [
    ("ipv4:127.0.0.1:54321", None, "ipv4:127.0.0.1"),
    ("ipv6:[::1]:54321", None, "ipv6:[::1]"),
    ("unix:/run/execgw.sock", None, "unix:/run/execgw.sock"),
    ("ipv4:10.1.2.3:1", [b"backend.example"], "backend.example"),
])
def test_a_caller_is_its_tls_identity_else_its_address_without_the_port(peer, identities, caller) -> None:
    assert caller_of(FakeContext(peer, identities)) == caller  # type: ignore[arg-type]


def test_a_burst_of_streams_is_admitted_up_to_the_bound_and_the_rest_refused_never_reset(start_gateway):
    """grpc core cancels calls at random once more than 1000 wait for the server to take them up;
    the gateway sizes that queue above its bounds, so each stream is admitted or told why not."""
    live = start_gateway(RESTING, max_watch_streams=1300, max_watch_streams_per_caller=1300, heartbeat_seconds=60)
    run_id = live.submit(live.order("crowd")).run.run_id
    outcomes: Counter[str] = Counter()

    async def crowd() -> None:
        channels = [grpc.aio.insecure_channel(live.gateway.target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(4)]
        first_messages = asyncio.Event()

        async def watch(index: int) -> None:
            call = pb_grpc.ExecutionServiceStub(channels[index % 4]).WatchRun(
                pb.WatchRunRequest(run_id=run_id), timeout=120)
            try:
                await call.read()
                outcomes["admitted"] += 1
            except grpc.aio.AioRpcError as error:
                outcomes[error.code().name] += 1
            if sum(outcomes.values()) == 1400:
                first_messages.set()
            await first_messages.wait()
            call.cancel()

        await asyncio.gather(*(watch(i) for i in range(1400)))
        for channel in channels:
            await channel.close()

    asyncio.run(crowd())
    assert outcomes == {"admitted": 1300, "RESOURCE_EXHAUSTED": 100}
