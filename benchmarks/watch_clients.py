"""WatchRun streams in child processes, the same code against the gateway and the bare server.

Each child opens its streams (grpc.aio, spread over a few channels as watchers.py does), reports
"ready" once every stream has received its first message, and reports back when every stream
ended. A stream records its events' sequences (gaps, repeats and a missing final status make it
"incomplete") and, for latencies, each fill's exec id, stored_at and time.time() on receipt: the
gateway, the simulator and these processes are on one machine, so one clock.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from dataclasses import dataclass, field
from multiprocessing.connection import Connection

import grpc

from execgw.client.client import events_in
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc

CHANNELS = 8


@dataclass
class StreamResult:
    events: int = 0
    complete: bool = False  # sequences 1..n without gap or repeat, ending with the final run status
    last_sequence: int = 0
    commissions: int = 0
    final_at: float | None = None
    error: str | None = None
    fills: list[tuple[str, float, float]] = field(default_factory=list)  # (exec_id, stored_at, received)


def _seconds(stamp: object) -> float:
    return stamp.seconds + stamp.nanos / 1e9  # type: ignore[attr-defined]


async def _watch(stub: pb_grpc.ExecutionServiceStub, run_id: str, timeout: float, keep_fills: bool,
                 most: int, opened: asyncio.Event) -> StreamResult:
    result = StreamResult()
    expected, in_order, final = 1, True, False
    request = pb.WatchRunRequest(run_id=run_id, max_events_per_message=most)
    try:
        async for message in stub.WatchRun(request, timeout=timeout):
            received = time.time()
            opened.set()
            if message.HasField("heartbeat"):
                continue
            for event in events_in(message):
                result.events += 1
                in_order = in_order and event.sequence == expected
                expected = event.sequence + 1
                result.last_sequence = event.sequence
                if event.HasField("fill") and keep_fills:
                    result.fills.append((event.fill.fill.exec_id, _seconds(event.stored_at), received))
                elif event.HasField("commission"):
                    result.commissions += 1
                elif event.HasField("run_status") and event.run_status.final:
                    final = True
                    result.final_at = received
            if final:
                break
    except grpc.aio.AioRpcError as error:
        result.error = f"{error.code().name}: {error.details()}"
    finally:
        opened.set()  # answered, if only by an error: the parent must not wait for it for ever
    result.complete = in_order and final and result.error is None
    return result


def _child(target: str, run_id: str, count: int, timeout: float, keep_fills: bool, most: int,
           pipe: Connection) -> None:
    async def main() -> list[StreamResult]:
        channels = [grpc.aio.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)])
                    for _ in range(min(CHANNELS, count))]
        stubs = [pb_grpc.ExecutionServiceStub(channel) for channel in channels]
        opened = [asyncio.Event() for _ in range(count)]
        tasks = [asyncio.create_task(_watch(stubs[i % len(stubs)], run_id, timeout, keep_fills, most, opened[i]))
                 for i in range(count)]
        await asyncio.gather(*(event.wait() for event in opened))
        pipe.send("ready")
        results = await asyncio.gather(*tasks)
        for channel in channels:
            await channel.close()
        return list(results)

    pipe.send(asyncio.run(main()))


class Watchers:
    """`count` streams on `run_id` spread over `processes` children.

    `start()` returns once every stream got its first message; `results()` once all ended."""

    def __init__(self, target: str, run_id: str, count: int, *, processes: int = 1, keep_fills: bool = False,
                 timeout: float = 900.0, events_per_message: int = 0) -> None:
        self.target = target
        self.run_id = run_id
        self.count = count
        self.timeout = timeout
        self.keep_fills = keep_fills
        self.events_per_message = events_per_message  # WatchRunRequest.max_events_per_message
        sizes = [count // processes + (1 if i < count % processes else 0) for i in range(processes)]
        self._sizes = [size for size in sizes if size]
        self._children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []

    def start(self, ready_timeout: float = 120.0) -> Watchers:
        context = multiprocessing.get_context("spawn")
        for size in self._sizes:
            ours, theirs = context.Pipe()
            child = context.Process(target=_child, args=(self.target, self.run_id, size, self.timeout,
                                                         self.keep_fills, self.events_per_message, theirs),
                                    daemon=True)
            child.start()
            self._children.append((child, ours))
        for _, pipe in self._children:
            if not pipe.poll(ready_timeout) or pipe.recv() != "ready":
                self.stop()
                raise TimeoutError(f"watchers not all open within {ready_timeout:g}s")
        return self

    def results(self, timeout: float | None = None) -> list[StreamResult]:
        wait = self.timeout + 30 if timeout is None else timeout
        out: list[StreamResult] = []
        for child, pipe in self._children:
            if not pipe.poll(wait):
                self.stop()
                raise TimeoutError(f"watchers did not finish within {wait:g}s")
            out.extend(pipe.recv())
            child.join(10)
        self._children = []
        return out

    def stop(self) -> None:
        for child, _ in self._children:
            if child.is_alive():
                child.kill()
            child.join(5)
        self._children = []
