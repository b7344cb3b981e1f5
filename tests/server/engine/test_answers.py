"""How long the engine waits for IB's answer to a request: until IB has been quiet for the
timeout, not for the timeout in all (server/engine/answers.py). The end-to-end case, a day of
executions slower to store than the timeout, is in tests/server/faults/test_ib_faults.py."""

from __future__ import annotations

import asyncio

import pytest

from execgw.server.engine.answers import IbAnswers
from execgw.server.ib import events as ib

ENDPOINT = "127.0.0.1:4002"
TIMEOUT = 0.2


async def _nothing() -> None:
    """A request sent (what it would send does not matter here)."""


def _ask(answers: IbAnswers, req_id: int, timeout: float = TIMEOUT) -> asyncio.Task[None]:
    return asyncio.get_running_loop().create_task(answers.ask(ENDPOINT, req_id, _nothing, timeout))


def test_a_request_ib_never_answers_fails_after_the_timeout() -> None:
    async def scenario() -> float:
        answers = IbAnswers()
        started = asyncio.get_running_loop().time()
        with pytest.raises(TimeoutError):
            await _ask(answers, 7)
        return asyncio.get_running_loop().time() - started

    assert TIMEOUT <= asyncio.run(scenario()) < 3 * TIMEOUT


def test_an_answer_still_being_applied_is_waited_for_past_the_timeout() -> None:
    """Parts of the answer keep being applied for 4 timeouts, then the end marker comes."""

    async def scenario() -> None:
        answers = IbAnswers()
        asked = _ask(answers, 7)
        for _ in range(16):
            await asyncio.sleep(TIMEOUT / 4)
            answers.heard([(ENDPOINT, 7)])
        assert not asked.done()
        answers.resolve(ib.ExecutionsEnd(ENDPOINT, 7))
        await asked

    asyncio.run(scenario())


def test_parts_of_another_request_do_not_keep_a_request_waiting() -> None:
    """Request 8's parts, and request 7's of another endpoint, keep coming for 3 timeouts:
    request 7 has failed by then, after its first."""

    async def scenario() -> None:
        answers = IbAnswers()
        asked = _ask(answers, 7)
        for _ in range(12):
            await asyncio.sleep(TIMEOUT / 4)
            answers.heard([(ENDPOINT, 8), ("127.0.0.1:7497", 7)])
        assert asked.done(), "kept waiting by another request's parts"
        with pytest.raises(TimeoutError):
            await asked

    asyncio.run(scenario())


def test_events_waiting_to_be_applied_keep_a_request_waiting_until_they_are() -> None:
    """The end marker may be among IB's events not yet applied: while any wait, IB was not
    quiet. Once none wait and nothing more is heard, the timeout runs out."""

    async def scenario() -> float:
        answers = IbAnswers()
        backlog = [5]
        answers.backlog = lambda: backlog[0]
        loop = asyncio.get_running_loop()
        asked = _ask(answers, 7)
        await asyncio.sleep(3 * TIMEOUT)
        assert not asked.done()
        backlog[0] = 0
        emptied = loop.time()
        with pytest.raises(TimeoutError):
            await asked
        return loop.time() - emptied

    assert asyncio.run(scenario()) < 2 * TIMEOUT + 0.1


def test_a_finished_request_leaves_nothing_behind() -> None:
    """Request ids only grow: what the answers keep per request must go with the request, and
    parts heard of a request nobody awaits are not kept."""

    async def scenario() -> IbAnswers:
        answers = IbAnswers()
        asked = _ask(answers, 7)
        await asyncio.sleep(0)
        answers.heard([(ENDPOINT, 7)])
        answers.resolve(ib.ExecutionsEnd(ENDPOINT, 7))
        await asked
        with pytest.raises(TimeoutError):
            await _ask(answers, 8, timeout=0.01)
        answers.heard([(ENDPOINT, 9)])
        return answers

    answers = asyncio.run(scenario())
    assert not answers._waiting and not answers._heard
    assert not answers.fail_request(ENDPOINT, 8, "an error naming request 8, after it was given up")
