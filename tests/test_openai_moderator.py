"""The OpenAI moderator through the real SDK over HTTP: categories mapped, failures as
``AdapterError`` like the storyteller's, and the patient check's retries."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from books.adapters.openai import close_shared_clients
from books.adapters.openai_moderator import LANES, OpenAIModerator
from books.domain import Language
from books.ports import AdapterError, Concern
from tests.fake_openai import FakeOpenAI, point_settings_at


@pytest.fixture
async def server(settings: Any) -> AsyncIterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        point_settings_at(settings, fake, timeout=0.5)
        yield fake
        await close_shared_clients()


async def test_every_openai_category_maps_onto_ours(server: FakeOpenAI) -> None:
    server.script(
        "moderations",
        flagged=["sexual/minors", "self-harm/instructions", "hate/threatening", "illicit/violent"],
    )
    verdict = await OpenAIModerator().check("some words", language=Language.ENGLISH)
    assert verdict.categories == (
        Concern.HATE.value,
        Concern.ILLICIT.value,
        Concern.SELF_HARM.value,
        Concern.SEXUAL.value,
    )
    assert "sexual/minors" in verdict.reason


async def test_a_flag_without_a_known_category_still_holds_the_text_back(server: FakeOpenAI) -> None:
    server.script("moderations", flagged=["a-category-added-later"])
    verdict = await OpenAIModerator().check("some words", language=Language.KOREAN)
    assert verdict.flagged and verdict.categories == (Concern.ILLICIT.value,)


@pytest.mark.parametrize(
    ("script", "sentence", "permanent"),
    [
        ({"status": 429}, "The safety check is busy right now", False),
        ({"status": 500}, r"The safety check.s service had a problem on its side \(500\)", False),
        ({"delay": 2.0}, "The safety check took too long to answer", False),
        ({"status": 401}, "The OpenAI key was not accepted", True),
    ],
    ids=["429", "500", "timeout", "401"],
)
async def test_failures_become_adapter_errors(
    server: FakeOpenAI, script: dict[str, Any], sentence: str, permanent: bool
) -> None:
    server.script("moderations", **script)
    with pytest.raises(AdapterError, match=sentence) as failure:
        await OpenAIModerator().check("a kite", language=Language.ENGLISH)
    assert failure.value.permanent is permanent


async def test_a_patient_check_outlasts_a_short_outage(server: FakeOpenAI) -> None:
    server.script("moderations", status=500, times=2)
    verdict = await OpenAIModerator().check_patiently(
        "a kite", language=Language.ENGLISH, attempts=3, backoff=0.01
    )
    assert not verdict.flagged
    assert len(server.requests_to("moderations")) == 3


async def test_a_patient_check_gives_up_after_its_attempts(server: FakeOpenAI) -> None:
    server.script("moderations", status=503, times=5)
    with pytest.raises(AdapterError, match="had a problem"):
        await OpenAIModerator().check_patiently("a kite", language=Language.ENGLISH, attempts=3, backoff=0.01)
    assert len(server.requests_to("moderations")) == 3


async def test_a_permanent_failure_is_not_retried(server: FakeOpenAI) -> None:
    server.script("moderations", status=401, times=5)
    with pytest.raises(AdapterError, match="key was not accepted"):
        await OpenAIModerator().check_patiently("a kite", language=Language.ENGLISH, attempts=3, backoff=0.01)
    assert len(server.requests_to("moderations")) == 1


async def test_checks_that_queue_up_share_requests_and_each_text_gets_its_own_verdict(
    server: FakeOpenAI,
) -> None:
    server.script("moderations", flagged=["violence"], when="dragon")
    texts = [f"Page {n}: the fox found a shell." for n in range(30)] + ["The dragon bit the king."]
    moderator = OpenAIModerator()

    verdicts = await asyncio.gather(*(moderator.check(text, language=Language.ENGLISH) for text in texts))

    assert [v.flagged for v in verdicts] == [False] * 30 + [True]
    assert Concern.VIOLENCE.value in verdicts[-1].categories
    requests = server.requests_to("moderations")
    assert sorted(text for body in requests for text in body["input"]) == sorted(texts)
    assert len(requests) < len(texts)


async def test_a_check_asked_as_the_last_sender_finishes_is_still_sent(
    server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A text's next sentence is checked the moment its check comes back: just then the sender
    # that answered has finished, and its slot is free even before asyncio says so.
    monkeypatch.setitem(LANES, "generated", 1)
    moderator = OpenAIModerator()
    first = await moderator.check("The fox found a shell.", language=Language.ENGLISH)

    second = await asyncio.wait_for(
        moderator.check("The fox found a shell. It was pink.", language=Language.ENGLISH), timeout=5
    )

    assert not first.flagged and not second.flagged
    assert len(server.requests_to("moderations")) == 2


async def test_words_a_family_typed_do_not_wait_behind_the_checks_of_a_page_being_made(
    server: FakeOpenAI,
) -> None:
    # Both of the generated lane's requests are slow to answer (within the client's timeout);
    # a third generated check waits for one of them, the child's words go out at once.
    server.script("moderations", delay=0.4, when="The fox", times=2)
    moderator = OpenAIModerator()
    generated = []
    for n in range(3):
        generated.append(
            asyncio.create_task(moderator.check(f"The fox found shell {n}.", language=Language.ENGLISH))
        )
        await _requests_reach(server, min(n + 1, 2))

    typed = await asyncio.wait_for(
        moderator.check_typed_words("a kite on the moon", language=Language.ENGLISH), timeout=0.3
    )

    assert not typed.flagged
    assert not any(check.done() for check in generated)  # still waiting for their answers
    assert server.requests_to("moderations")[-1]["input"] == ["a kite on the moon"]
    assert [v.flagged for v in await asyncio.gather(*generated)] == [False, False, False]
    assert len(server.requests_to("moderations")) == 4  # the third fox in a request of its own


async def _requests_reach(server: FakeOpenAI, count: int) -> None:
    """The fake server has received ``count`` moderation requests (it answers in its own thread)."""
    for _ in range(200):
        if len(server.requests_to("moderations")) >= count:
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"the server never had {count} moderation requests")


async def _checks_one_after_another(server: FakeOpenAI, moderator: OpenAIModerator, count: int) -> list[Any]:
    """``count`` checks, each asked once the one before has reached the server."""
    checks = []
    for n in range(count):
        already = len(server.requests_to("moderations"))
        checks.append(asyncio.create_task(moderator.check(f"Shell {n}.", language=Language.ENGLISH)))
        await _requests_reach(server, already + 1)
    return checks


async def test_a_slow_moderator_gets_more_requests_at_once(server: FakeOpenAI) -> None:
    # With two requests at most, every check of a busy process waited up to a whole slow
    # round trip for a free one. Once answers are seen to take 0.3 s, five checks asked one
    # after another each go out at once (about one request every 25 ms would still be allowed).
    moderator = OpenAIModerator()
    server.script("moderations", delay=0.3)
    await moderator.check("The fox found a shell.", language=Language.ENGLISH)
    server.script("moderations", delay=0.3, times=5)

    checks = await _checks_one_after_another(server, moderator, 5)

    assert not any(check.done() for check in checks)  # five requests on their way together
    assert [v.flagged for v in await asyncio.gather(*checks)] == [False] * 5
    assert [body["input"] for body in server.requests_to("moderations")[1:]] == [
        [f"Shell {n}."] for n in range(5)
    ]


async def test_a_refused_request_does_not_count_as_a_slow_answer(server: FakeOpenAI) -> None:
    # A 429 that comes after a while must not open more requests at once: with two on their
    # way, a third check waits for one of them, as before any answer was seen.
    moderator = OpenAIModerator()
    server.script("moderations", status=429, delay=0.3)
    with pytest.raises(AdapterError, match="busy"):
        await moderator.check("The fox found a shell.", language=Language.ENGLISH)
    server.script("moderations", delay=0.3, times=2)

    checks = await _checks_one_after_another(server, moderator, 2)
    checks.append(asyncio.create_task(moderator.check("Shell 2.", language=Language.ENGLISH)))
    await asyncio.sleep(0.1)  # a request allowed out goes within milliseconds

    assert len(server.requests_to("moderations")) == 1 + 2 and not any(check.done() for check in checks)
    await asyncio.gather(*checks)
    assert server.requests_to("moderations")[-1]["input"] == ["Shell 2."]
