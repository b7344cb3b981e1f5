"""The gRPC floor: a bare grpc.aio server, in a process of its own like the gateway, streaming the
gateway's WatchRunResponse messages (benchmarks/run_events.py) to the same watchers
(benchmarks/watch_clients.py) with nothing else to do: no database, no per-watcher conversion.

Each stream gets the run's first event when it opens (as a gateway stream gets its replay), then
whatever is broadcast: a put on each stream's queue, as the gateway's bus does. The broadcast
stamps stored_at with the time it was sent, so the watchers' latency arithmetic is the gateway's.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import time
from collections.abc import AsyncIterator
from multiprocessing.connection import Connection
from typing import Any

import grpc

from benchmarks.rig import rss_mb
from execgw.server.api.watch_limits import server_options
from execgw.v1 import execution_pb2 as pb
from execgw.v1 import execution_pb2_grpc as pb_grpc


class BareWatchService(pb_grpc.ExecutionServiceServicer):
    def __init__(self, first: pb.WatchRunResponse) -> None:
        self.first = first
        self.queues: set[asyncio.Queue[pb.WatchRunResponse]] = set()

    async def WatchRun(self, request: pb.WatchRunRequest,
                       context: grpc.aio.ServicerContext) -> AsyncIterator[pb.WatchRunResponse]:
        queue: asyncio.Queue[pb.WatchRunResponse] = asyncio.Queue()
        self.queues.add(queue)
        try:
            yield self.first
            while True:
                message = await queue.get()
                yield message
                if message.event.HasField("run_status") and message.event.run_status.final:
                    return
        finally:
            self.queues.discard(queue)

    def broadcast(self, message: pb.WatchRunResponse) -> None:
        for queue in self.queues:
            queue.put_nowait(message)


def _stamped(template: pb.WatchRunResponse) -> pb.WatchRunResponse:
    message = pb.WatchRunResponse()
    message.CopyFrom(template)
    message.event.stored_at.FromNanoseconds(time.time_ns())
    return message


async def _broadcast(service: BareWatchService, messages: list[pb.WatchRunResponse], per_tick: int,
                     rate: float) -> float:
    """`per_tick` messages per tick, `rate` ticks per second (0: all at once); the last message
    (the final status) after the last tick. Ticks follow an absolute schedule, so the rate holds."""
    body, final = messages[:-1], messages[-1]
    loop = asyncio.get_running_loop()
    started = loop.time()
    for tick, at in enumerate(range(0, len(body), per_tick)):
        if rate:
            delay = started + tick / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        for template in body[at:at + per_tick]:
            service.broadcast(_stamped(template))
    service.broadcast(_stamped(final))
    return time.time()


def _serve(first: bytes, max_streams: int, pipe: Connection) -> None:
    async def main() -> None:
        service = BareWatchService(pb.WatchRunResponse.FromString(first))
        # The gateway's own server options, so the floor is the same gRPC server, minus the gateway.
        server = grpc.aio.server(options=server_options(max_streams))
        pb_grpc.add_ExecutionServiceServicer_to_server(service, server)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        pipe.send(port)
        loop = asyncio.get_running_loop()
        while True:
            command, args = await loop.run_in_executor(None, pipe.recv)
            if command == "stop":
                break
            if command == "rss":
                pipe.send(rss_mb(os.getpid()))
            elif command == "broadcast":
                raw, per_tick, rate = args
                messages = [pb.WatchRunResponse.FromString(m) for m in raw]
                pipe.send(await _broadcast(service, messages, per_tick, rate))
        await server.stop(1)

    asyncio.run(main())
    pipe.send(None)


class BareServer:
    """`with BareServer(messages[0]) as bare:` a bare grpc.aio server at `bare.target`."""

    def __init__(self, first: bytes, max_streams: int = 1100) -> None:
        self.first = first
        self.max_streams = max_streams
        self.target = ""
        self._pipe: Connection | None = None
        self._process: multiprocessing.process.BaseProcess | None = None

    def start(self) -> BareServer:
        ours, theirs = multiprocessing.Pipe()
        self._process = multiprocessing.get_context("spawn").Process(
            target=_serve, args=(self.first, self.max_streams, theirs), name="bench-bare-grpc", daemon=True)
        self._process.start()
        if not ours.poll(30):
            self._process.kill()
            raise RuntimeError("the bare gRPC server did not start")
        self.target = f"127.0.0.1:{ours.recv()}"
        self._pipe = ours
        return self

    def _ask(self, command: str, *args: Any, timeout: float = 600) -> Any:
        assert self._pipe is not None
        self._pipe.send((command, args))
        if not self._pipe.poll(timeout):
            raise TimeoutError(f"the bare gRPC server did not answer {command}")
        return self._pipe.recv()

    def broadcast(self, messages: list[bytes], per_tick: int = 1, rate: float = 0.0) -> float:
        """Sends messages[1:] to every open stream; returns time.time() after the last was queued."""
        return float(self._ask("broadcast", messages[1:], per_tick, rate))

    def rss_mb(self) -> float:
        return float(self._ask("rss", timeout=30))

    def stop(self) -> None:
        if self._process is None:
            return
        try:
            if self._pipe is not None and self._process.is_alive():
                self._pipe.send(("stop", ()))
                self._pipe.poll(10)
        except (BrokenPipeError, OSError):
            pass
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()
        self._process = None

    def __enter__(self) -> BareServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
