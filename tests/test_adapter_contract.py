"""One contract, every adapter: the offline storyteller, OpenAI (over HTTP, through the real
SDK, against a loopback OpenAI-compatible server) and the parent's own words."""

from __future__ import annotations

import io
import re
from dataclasses import replace
from typing import Any, ClassVar

import pytest
from PIL import Image

from books.adapters.offline import (
    OfflineIllustrator,
    OfflineQuestionWriter,
    OfflineStoryWriter,
    OfflineWordExplainer,
    offline_new_words,
    offline_page_text,
)
from books.domain import Character, Language
from books.ports import (
    Illustrator,
    PageSoFar,
    QuestionWriter,
    StoryContext,
    StoryWriter,
    WordExplainer,
)
from books.services import ParentQuestion, ParentWords
from tests.fake_openai import point_settings_at


def a_context(
    child_input: str = "a dragon sneezes glitter", language: Language = Language.ENGLISH, page: int = 2
) -> StoryContext:
    return StoryContext(
        characters=(
            Character("Mina", "a girl with a red umbrella"),
            Character("Bori", "a sleepy orange cat"),
        ),
        language=language,
        page_number=page,
        page_count=4,
        pages_so_far=tuple(PageSoFar(n, f"Page {n} happened.") for n in range(1, page)),
        child_input=child_input,
        book_key="book-1",
    )


ENGLISH_PAGE = "Mina whispered to the sleepy owl, and Bori opened a shiny umbrella for their adventure."
KOREAN_PAGE = "어느 맑은 아침, 민아는 작은 불빛을 따라 모험을 떠났어요. 바람이 살랑살랑 불었어요."
KOREAN_NAMES = (Character("민아", "빨간 우산을 든 아이"), Character("보리", "졸린 주황색 고양이"))


async def collect(pieces: Any) -> list[str]:
    return [piece async for piece in pieces]


def word_lines(explained: str) -> list[tuple[str, str]]:
    """The (word, meaning) pairs of an explanation, checking every line has both."""
    lines = explained.strip().split("\n")
    assert all(line.strip() for line in lines), explained
    pairs = [tuple(part.strip() for part in re.split(r" — | - ", line, maxsplit=1)) for line in lines]
    assert all(len(pair) == 2 and all(pair) for pair in pairs), explained
    return [(word, meaning) for word, meaning in pairs]


def has_hangul(text: str) -> bool:
    return any("\uac00" <= ch <= "\ud7a3" for ch in text)


class AdapterContract:
    """What every set of adapters promises the pipeline."""

    story_pieces_at_least: ClassVar[int] = 1

    def writers(self) -> tuple[StoryWriter, QuestionWriter, Illustrator]:
        raise NotImplementedError

    def explainer(self) -> WordExplainer:
        raise NotImplementedError

    async def test_story_arrives_in_text_pieces_that_make_the_page(self) -> None:
        story, _, _ = self.writers()
        pieces = await collect(story.write(a_context()))
        assert len(pieces) >= self.story_pieces_at_least
        assert all(isinstance(piece, str) for piece in pieces)
        assert "".join(pieces).strip()

    async def test_question_is_a_question(self) -> None:
        _, question, _ = self.writers()
        asked = "".join(await collect(question.ask(a_context(), "Mina found a door.")))
        assert asked.strip().endswith(("?", "？"))

    async def test_picture_is_a_real_png(self) -> None:
        _, _, illustrator = self.writers()
        picture = await illustrator.draw(a_context())
        assert picture.content_type == "image/png"
        image = Image.open(io.BytesIO(picture.data))
        assert image.format == "PNG" and image.width > 0

    async def test_korean_books_are_written(self) -> None:
        story, _, _ = self.writers()
        text = "".join(await collect(story.write(a_context("용이 재채기를 해요", Language.KOREAN))))
        assert text.strip()

    async def test_new_words_arrive_in_text_pieces_one_word_a_line(self) -> None:
        pieces = await collect(self.explainer().explain(a_context(), ENGLISH_PAGE))
        assert pieces and all(isinstance(piece, str) for piece in pieces)
        assert 2 <= len(word_lines("".join(pieces))) <= 3

    async def test_korean_books_get_new_words(self) -> None:
        context = replace(a_context("용이 재채기를 해요", Language.KOREAN), characters=KOREAN_NAMES)
        explained = "".join(await collect(self.explainer().explain(context, KOREAN_PAGE)))
        assert 2 <= len(word_lines(explained)) <= 3


class TestOfflineStoryteller(AdapterContract):
    story_pieces_at_least = 3

    def writers(self) -> tuple[StoryWriter, QuestionWriter, Illustrator]:
        return OfflineStoryWriter(), OfflineQuestionWriter(), OfflineIllustrator()

    def explainer(self) -> WordExplainer:
        return OfflineWordExplainer()

    async def test_same_inputs_same_page_different_inputs_different_page(self) -> None:
        story = OfflineStoryWriter()
        first = "".join(await collect(story.write(a_context("a dragon sneezes glitter"))))
        again = "".join(await collect(story.write(a_context("a dragon sneezes glitter"))))
        other = "".join(await collect(story.write(a_context("the moon falls asleep"))))
        assert first == again
        assert first != other

    async def test_uses_the_characters_and_the_childs_input(self) -> None:
        text = "".join(await collect(OfflineStoryWriter().write(a_context("a dragon sneezes glitter"))))
        assert "a dragon sneezes glitter" in text
        assert "Mina" in text or "Bori" in text

    async def test_korean_text_is_korean(self) -> None:
        text = "".join(
            await collect(OfflineStoryWriter().write(a_context("용이 재채기를 해요", Language.KOREAN)))
        )
        assert any("\uac00" <= ch <= "\ud7a3" for ch in text)

    async def test_pictures_differ_with_the_input_and_repeat_with_it(self) -> None:
        drawer = OfflineIllustrator()
        first = (await drawer.draw(a_context("a dragon"))).data
        assert first == (await drawer.draw(a_context("a dragon"))).data
        assert first != (await drawer.draw(a_context("a whale"))).data

    async def test_new_words_repeat_for_the_same_page(self) -> None:
        explainer = OfflineWordExplainer()
        first = "".join(await collect(explainer.explain(a_context(), ENGLISH_PAGE)))
        assert first == "".join(await collect(explainer.explain(a_context(), ENGLISH_PAGE)))

    async def test_new_words_come_from_the_page_and_skip_the_characters(self) -> None:
        explained = "".join(await collect(OfflineWordExplainer().explain(a_context(), ENGLISH_PAGE)))
        words = [word for word, _ in word_lines(explained)]
        assert all(word in ENGLISH_PAGE.lower() for word in words)
        assert not {"mina", "bori"} & set(words)
        assert "umbrella — a roof you carry over your head when it rains." in explained

    async def test_unknown_words_get_a_kind_invitation_to_ask(self) -> None:
        page = "Mina opened the garden gate."
        explained = "".join(await collect(OfflineWordExplainer().explain(a_context(), page)))
        assert {word for word, _ in word_lines(explained)} <= {"opened", "garden", "gate"}
        assert "ask a grown-up" in explained

    @pytest.mark.parametrize(
        ("language", "child_input"),
        [(Language.ENGLISH, "a dragon sneezes glitter"), (Language.KOREAN, "용이 재채기를 해요")],
    )
    def test_the_offline_storys_own_words_have_real_meanings(
        self, language: Language, child_input: str
    ) -> None:
        # Across books and pages, so every template sentence turns up at least once.
        for book in range(12):
            for page_number in (2, 4):
                context = replace(a_context(child_input, language, page_number), book_key=f"book-{book}")
                explained = "\n".join(offline_new_words(context, offline_page_text(context)))
                assert 2 <= len(word_lines(explained)) <= 3
                assert "ask a grown-up" not in explained and "어른에게" not in explained

    async def test_korean_page_gets_korean_words_and_meanings(self) -> None:
        context = replace(a_context("용이 재채기를 해요", Language.KOREAN), characters=KOREAN_NAMES)
        explained = "".join(await collect(OfflineWordExplainer().explain(context, KOREAN_PAGE)))
        for word, meaning in word_lines(explained):
            assert word[:2] in KOREAN_PAGE  # the word, or the stem of the verb it comes from
            assert has_hangul(meaning)
            assert not word.startswith(("민아", "보리"))

    async def test_korean_words_lose_their_particles(self) -> None:
        context = replace(a_context(language=Language.KOREAN), characters=KOREAN_NAMES)
        page = "민아가 호랑이를 만났어요. 호랑이가 숲속에서 노래를 불렀어요."
        explained = "".join(await collect(OfflineWordExplainer().explain(context, page)))
        assert {word for word, _ in word_lines(explained)} <= {"호랑이", "숲속", "노래"}


class TestOpenAIAdapters(AdapterContract):
    story_pieces_at_least = 2

    @pytest.fixture(autouse=True)
    def _point_at_fake_server(self, settings: Any, fake_openai: Any) -> None:
        point_settings_at(settings, fake_openai, timeout=5.0)
        self.server = fake_openai

    def writers(self) -> tuple[StoryWriter, QuestionWriter, Illustrator]:
        from books.adapters.openai import OpenAIIllustrator, OpenAIQuestionWriter, OpenAIStoryWriter

        return OpenAIStoryWriter(), OpenAIQuestionWriter(), OpenAIIllustrator()

    def explainer(self) -> WordExplainer:
        from books.adapters.openai import OpenAIWordExplainer

        return OpenAIWordExplainer()

    async def test_every_call_carries_its_context(self) -> None:
        story, _, illustrator = self.writers()
        await collect(story.write(a_context()))
        await illustrator.draw(a_context())
        chat, image = self.server.requests_to("chat")[-1], self.server.requests_to("images")[-1]
        prompt = str(chat["messages"])
        for needed in ("Mina", "a sleepy orange cat", "Page 1 happened.", "a dragon sneezes glitter"):
            assert needed in prompt
        assert "a girl with a red umbrella" in image["prompt"]


class TestParentsOwnWords(AdapterContract):
    def writers(self) -> tuple[StoryWriter, QuestionWriter, Illustrator]:
        return (
            ParentWords("Mina opened the garden gate."),
            ParentQuestion("What was behind it?"),
            OfflineIllustrator(),
        )

    def explainer(self) -> WordExplainer:
        # The parent writes the page, not the words: those are explained as for any page.
        return OfflineWordExplainer()

    async def test_the_parents_words_are_kept_as_written(self) -> None:
        text = "".join(await collect(ParentWords("Mina opened the garden gate.").write(a_context())))
        assert text == "Mina opened the garden gate."


# -- configuration --------------------------------------------------------------------------------


def test_a_misspelt_adapter_stops_the_server_at_start_with_the_setting_named(settings: Any) -> None:
    from django.core.exceptions import ImproperlyConfigured

    from books.ports import load_adapters

    misspelt = "books.adapters.offline.OfflinePainter"
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "ILLUSTRATOR": misspelt}
    with pytest.raises(ImproperlyConfigured, match=r"ILLUSTRATOR.*OfflinePainter"):
        load_adapters()
