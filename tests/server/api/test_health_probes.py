"""Health with probes (server/api/health.py): a state learnt only by asking is asked once however
many Checks come at once, at most once per interval, and a slow probe does not hold Check up."""

from __future__ import annotations

import asyncio

import pytest
from grpc_health.v1 import health_pb2

from execgw.server.api.health import ANSWER_WITHIN, REASON_KEY, HealthWithReasons

SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


class Context:
    """What Check uses of a grpc.aio ServicerContext."""

    def __init__(self) -> None:
        self.trailing: tuple[tuple[str, str], ...] = ()

    def set_trailing_metadata(self, metadata: tuple[tuple[str, str], ...]) -> None:
        self.trailing = metadata


async def check(health: HealthWithReasons, service: str = "db") -> tuple[int, str]:
    context = Context()
    reply = await health.Check(health_pb2.HealthCheckRequest(service=service), context)  # type: ignore[arg-type]
    return reply.status, dict(context.trailing).get(REASON_KEY, "")


def test_concurrent_checks_share_one_probe_and_it_is_asked_again_only_after_the_interval() -> None:
    async def scenario() -> None:
        health = HealthWithReasons()
        await health.set_with_reason("db", True)
        answers = iter([(False, "gone"), (True, "")])
        calls = 0

        async def probe() -> tuple[bool, str]:
            nonlocal calls
            calls += 1
            await asyncio.sleep(0.05)
            return next(answers)

        health.add_probe("db", probe, interval=0.3)
        results = await asyncio.gather(*(check(health) for _ in range(20)))
        assert calls == 1 and set(results) == {(NOT_SERVING, "gone")}
        assert await check(health) == (NOT_SERVING, "gone") and calls == 1, "within the interval: not asked"
        await asyncio.sleep(0.35)
        assert await check(health) == (SERVING, "") and calls == 2

    asyncio.run(scenario())


def test_a_probe_slower_than_a_check_answers_the_next_check() -> None:
    async def scenario() -> None:
        health = HealthWithReasons()
        await health.set_with_reason("db", True)
        release = asyncio.Event()

        async def hung_database() -> tuple[bool, str]:
            await release.wait()
            return False, "the database does not answer"

        health.add_probe("db", hung_database, interval=0.0)
        started = asyncio.get_running_loop().time()
        assert await check(health) == (SERVING, "")  # what is known, within ANSWER_WITHIN
        assert asyncio.get_running_loop().time() - started < ANSWER_WITHIN + 0.4
        release.set()
        await asyncio.sleep(0.05)
        assert (await check(health))[0] == NOT_SERVING

    asyncio.run(scenario())


@pytest.mark.parametrize("service", ["", "other"])
def test_services_without_a_probe_answer_as_set(service: str) -> None:
    async def scenario() -> None:
        health = HealthWithReasons()
        await health.set_with_reason(service, False, "why")

        async def never() -> tuple[bool, str]:
            raise AssertionError("a service without a probe was probed")

        health.add_probe("db", never, interval=0.0)
        assert await check(health, service) == (NOT_SERVING, "why")

    asyncio.run(scenario())
