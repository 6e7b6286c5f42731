"""The page pipeline: sections run at once, each waits only for what it needs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from books.domain import Character, Language
from books.ports import AdapterError, Illustrator, Picture, QuestionWriter, StoryContext, StoryWriter
from streaming.pipeline import PageWorkers, make_page
from streaming.sections import SECTIONS, SectionStatus, sections_for


def a_context(page: int = 1, of: int = 3) -> StoryContext:
    return StoryContext(
        characters=(Character("Mina", "brave"),),
        language=Language.ENGLISH,
        page_number=page,
        page_count=of,
        pages_so_far=(),
        child_input="a kite",
    )


class GatedStory(StoryWriter):
    """Writes only once the picture has started, so the two must run at the same time."""

    def __init__(self, picture_started: asyncio.Event) -> None:
        self.picture_started = picture_started

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        yield "Mina flew "
        await asyncio.wait_for(self.picture_started.wait(), timeout=5)
        yield "a kite."


class GatedIllustrator(Illustrator):
    def __init__(self, picture_started: asyncio.Event, story_done: asyncio.Event) -> None:
        self.picture_started, self.story_done = picture_started, story_done

    async def draw(self, context: StoryContext) -> Picture:
        self.picture_started.set()
        await asyncio.wait_for(self.story_done.wait(), timeout=5)
        return Picture(b"\x89PNG")


class EchoQuestion(QuestionWriter):
    def __init__(self) -> None:
        self.seen_text = ""

    async def ask(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        self.seen_text = page_text
        yield "Where will the kite go?"


class BrokenIllustrator(Illustrator):
    async def draw(self, context: StoryContext) -> Picture:
        raise AdapterError("The picture could not be drawn.")


class BrokenStory(StoryWriter):
    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        yield "Half a "
        raise AdapterError("The stream stopped half-way.")


def recorder() -> tuple[list[tuple[str, str, Any]], Any]:
    events: list[tuple[str, str, Any]] = []

    async def on_event(section: str, what: str, payload: Any) -> None:
        events.append((section, str(what), payload))

    return events, on_event


async def test_story_and_picture_run_at_the_same_time_and_the_question_waits_for_the_story() -> None:
    picture_started, story_done = asyncio.Event(), asyncio.Event()
    events, on_event = recorder()

    async def watch(section: str, what: str, payload: Any) -> None:
        await on_event(section, what, payload)
        if (section, what) == ("story", SectionStatus.COMPLETE):
            story_done.set()

    question = EchoQuestion()
    workers = PageWorkers(
        GatedStory(picture_started), question, GatedIllustrator(picture_started, story_done)
    )
    result = await make_page(a_context(), workers, watch)
    assert result.ok
    assert result.text == "Mina flew a kite."
    assert question.seen_text == "Mina flew a kite."
    assert result.question == "Where will the kite go?"
    order = [(s, w) for s, w, _ in events if w != "delta"]
    assert order.index(("question", "streaming")) > order.index(("story", "complete"))
    assert order.index(("picture", "streaming")) < order.index(("story", "complete"))
    deltas = [p for s, w, p in events if s == "story" and w == "delta"]
    assert deltas == ["Mina flew ", "a kite."]


async def test_a_failed_section_does_not_stop_the_others() -> None:
    events, on_event = recorder()
    from books.adapters.offline import OfflineQuestionWriter, OfflineStoryWriter

    workers = PageWorkers(OfflineStoryWriter(), OfflineQuestionWriter(), BrokenIllustrator())
    result = await make_page(a_context(), workers, on_event)
    assert result.failures == {"picture": "The picture could not be drawn."}
    assert result.text and result.question.endswith("?")
    statuses = {s: w for s, w, _ in events if w != "delta"}
    assert statuses == {"story": "complete", "picture": "unhealthy", "question": "complete"}


async def test_a_section_that_needs_a_failed_one_is_unhealthy_too() -> None:
    events, on_event = recorder()
    workers = PageWorkers(BrokenStory(), EchoQuestion(), GatedIllustrator(asyncio.Event(), _set_event()))
    result = await make_page(a_context(), workers, on_event)
    assert result.failures["story"] == "The stream stopped half-way."
    assert "needs the story" in result.failures["question"]
    assert "picture" not in result.failures
    assert ("question", "streaming", None) not in events  # never started: it had nothing to ask about


def _set_event() -> asyncio.Event:
    event = asyncio.Event()
    event.set()
    return event


async def test_the_last_page_asks_no_question() -> None:
    from books.adapters.offline import OfflineIllustrator, OfflineStoryWriter

    question = EchoQuestion()
    result = await make_page(
        a_context(page=3, of=3), PageWorkers(OfflineStoryWriter(), question, OfflineIllustrator())
    )
    assert result.ok and result.question == "" and question.seen_text == ""


def test_sections_are_one_table() -> None:
    assert [s.name for s in SECTIONS] == ["story", "picture", "question", "new_words"]
    assert [s.name for s in sections_for(is_last_page=True)] == ["story", "picture", "new_words"]
