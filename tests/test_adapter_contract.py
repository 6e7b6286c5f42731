"""One contract, every adapter: the offline storyteller, OpenAI (over HTTP, through the real
SDK, against a loopback OpenAI-compatible server) and the parent's own words."""

from __future__ import annotations

import io
from typing import Any, ClassVar

import pytest
from PIL import Image

from books.adapters.offline import OfflineIllustrator, OfflineQuestionWriter, OfflineStoryWriter
from books.domain import Character, Language
from books.ports import Illustrator, PageSoFar, QuestionWriter, StoryContext, StoryWriter
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


async def collect(pieces: Any) -> list[str]:
    return [piece async for piece in pieces]


class AdapterContract:
    """What every set of adapters promises the pipeline."""

    story_pieces_at_least: ClassVar[int] = 1

    def writers(self) -> tuple[StoryWriter, QuestionWriter, Illustrator]:
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


class TestOfflineStoryteller(AdapterContract):
    story_pieces_at_least = 3

    def writers(self) -> tuple[StoryWriter, QuestionWriter, Illustrator]:
        return OfflineStoryWriter(), OfflineQuestionWriter(), OfflineIllustrator()

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


class TestOpenAIAdapters(AdapterContract):
    story_pieces_at_least = 2

    @pytest.fixture(autouse=True)
    def _point_at_fake_server(self, settings: Any, fake_openai: Any) -> None:
        point_settings_at(settings, fake_openai, timeout=5.0)
        self.server = fake_openai

    def writers(self) -> tuple[StoryWriter, QuestionWriter, Illustrator]:
        from books.adapters.openai import OpenAIIllustrator, OpenAIQuestionWriter, OpenAIStoryWriter

        return OpenAIStoryWriter(), OpenAIQuestionWriter(), OpenAIIllustrator()

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

    async def test_the_parents_words_are_kept_as_written(self) -> None:
        text = "".join(await collect(ParentWords("Mina opened the garden gate.").write(a_context())))
        assert text == "Mina opened the garden gate."
