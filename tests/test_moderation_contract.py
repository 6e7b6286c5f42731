"""One moderation contract, every moderator: the offline word lists and OpenAI's moderation
endpoint (over HTTP, through the real SDK, against the loopback OpenAI-compatible server).

The fake server cannot judge text, so for OpenAI ``expect_flag`` scripts the answer the real
endpoint would give; what the contract then checks is everything our adapter does with it.
The offline moderator has to find the same things in the words themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from books.adapters.offline_moderator import OfflineModerator
from books.adapters.openai import close_shared_clients
from books.adapters.openai_moderator import OpenAIModerator
from books.domain import Language
from books.ports import Concern, Moderator
from tests.fake_openai import FakeOpenAI, point_settings_at

FAIRY_TALE = "The wolf knocked on the door, the witch stirred her pot, and the knight put down his sword."
KOREAN_FAIRY_TALE = "늑대가 문을 두드렸어요. 마녀는 솥을 저었고, 기사는 칼을 내려놓았어요."


class ModerationContract:
    """What every moderator promises the app."""

    moderator: Moderator

    def expect_flag(self, text: str, api_categories: list[str]) -> None:
        """Arrange for ``text`` to be judged harmful in these OpenAI categories (where needed)."""

    async def test_a_fairy_tale_is_not_flagged(self) -> None:
        for text, language in [(FAIRY_TALE, Language.ENGLISH), (KOREAN_FAIRY_TALE, Language.KOREAN)]:
            verdict = await self.moderator.check(text, language=language)
            assert not verdict.flagged and verdict.categories == (), text

    async def test_violence_is_flagged_as_violence(self) -> None:
        text = "The knight wants to kill the baby dragon with a gun."
        self.expect_flag(text, ["violence"])
        verdict = await self.moderator.check(text, language=Language.ENGLISH)
        assert verdict.flagged
        assert Concern.VIOLENCE.value in verdict.categories
        assert verdict.reason  # staff see what was found

    async def test_typed_words_get_the_verdict_made_text_gets(self) -> None:
        kind, unkind = "a kite flies over the sea", "The knight wants to kill the baby dragon with a gun."
        self.expect_flag(unkind, ["violence"])
        assert not (await self.moderator.check_typed_words(kind, language=Language.ENGLISH)).flagged
        verdict = await self.moderator.check_typed_words(unkind, language=Language.ENGLISH)
        assert verdict.flagged and Concern.VIOLENCE.value in verdict.categories

    async def test_korean_violence_is_flagged(self) -> None:
        text = "기사가 아기 용을 죽이고 싶어 해요."
        self.expect_flag(text, ["violence", "violence/graphic"])
        verdict = await self.moderator.check(text, language=Language.KOREAN)
        assert verdict.flagged and Concern.VIOLENCE.value in verdict.categories

    async def test_insults_are_flagged_as_hate(self) -> None:
        text = "You are a stupid idiot."
        self.expect_flag(text, ["harassment"])
        verdict = await self.moderator.check(text, language=Language.ENGLISH)
        assert verdict.flagged and verdict.categories == (Concern.HATE.value,)

    async def test_self_harm_is_flagged(self) -> None:
        text = "The bunny says it wants to die."
        self.expect_flag(text, ["self-harm", "self-harm/intent"])
        verdict = await self.moderator.check(text, language=Language.ENGLISH)
        assert verdict.flagged and verdict.categories == (Concern.SELF_HARM.value,)

    @pytest.mark.parametrize(
        "text",
        [
            "Call Mina on 010-1234-5678 tomorrow.",
            "Write to mina.kim@example.com for the party.",
            "I live at 12 Oak Street, come and play.",
            "우리 집은 테헤란로 152에 있어요.",
        ],
        ids=["phone", "e-mail", "street", "korean-road"],
    )
    async def test_personal_details_are_flagged_without_asking_anyone(self, text: str) -> None:
        verdict = await self.moderator.check(text, language=Language.ENGLISH)
        assert verdict.flagged and Concern.PERSONAL_DETAILS.value in verdict.categories

    async def test_categories_are_ours_and_sorted(self) -> None:
        text = "Kill the stupid troll and phone 010-9876-5432."
        self.expect_flag(text, ["violence", "harassment/threatening"])
        verdict = await self.moderator.check(text, language=Language.ENGLISH)
        assert verdict.categories == tuple(sorted(verdict.categories))
        assert set(verdict.categories) == {
            Concern.VIOLENCE.value,
            Concern.HATE.value,
            Concern.PERSONAL_DETAILS.value,
        }

    def test_has_a_name_for_the_flags(self) -> None:
        assert self.moderator.name


class TestOfflineModerator(ModerationContract):
    moderator = OfflineModerator()


class TestOpenAIModerator(ModerationContract):
    moderator = OpenAIModerator()

    @pytest.fixture(autouse=True)
    async def server(self, settings: Any) -> AsyncIterator[FakeOpenAI]:
        with FakeOpenAI() as fake:
            point_settings_at(settings, fake)
            self.fake = fake
            yield fake
            await close_shared_clients()

    def expect_flag(self, text: str, api_categories: list[str]) -> None:
        self.fake.script("moderations", flagged=api_categories, when=text)

    async def test_the_text_goes_to_the_moderation_endpoint_as_it_is(self) -> None:
        await self.moderator.check(FAIRY_TALE, language=Language.ENGLISH)
        (request,) = self.fake.requests_to("moderations")
        assert request["input"] == [FAIRY_TALE]  # texts go in a list: a busy server sends several
        assert request["model"] == "omni-moderation-latest"
