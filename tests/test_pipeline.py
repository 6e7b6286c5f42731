"""The page pipeline: sections run at once, each waits only for what it needs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from books.adapters.offline_moderator import OfflineModerator
from books.domain import Character, Language
from books.ports import (
    AdapterError,
    Illustrator,
    Picture,
    QuestionWriter,
    StoryContext,
    StoryWriter,
    Verdict,
)
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


async def test_a_failed_section_does_not_stop_the_others(caplog: pytest.LogCaptureFixture) -> None:
    events, on_event = recorder()
    from books.adapters.offline import OfflineQuestionWriter, OfflineStoryWriter

    workers = PageWorkers(OfflineStoryWriter(), OfflineQuestionWriter(), BrokenIllustrator())
    with caplog.at_level(logging.WARNING, logger="streaming.pipeline"):
        result = await make_page(a_context(), workers, on_event)
    assert result.failures == {"picture": "The picture could not be drawn."}
    assert [r.getMessage() for r in caplog.records if r.name == "streaming.pipeline"] == [
        "section picture is unhealthy: The picture could not be drawn. "
        "(AdapterError('The picture could not be drawn.'))"
    ]
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


# -- generated text is checked before it is shown ---------------------------------------------------


class PiecesStory(StoryWriter):
    """Writes its pieces as a stream does: the reader waits for each one (and others run meanwhile)."""

    def __init__(self, *pieces: str) -> None:
        self.pieces = pieces

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        for piece in self.pieces:
            await asyncio.sleep(0)
            yield piece


class PiecesQuestion(QuestionWriter):
    def __init__(self, *pieces: str) -> None:
        self.pieces = pieces

    async def ask(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        for piece in self.pieces:
            await asyncio.sleep(0)
            yield piece


class WatchedModerator(OfflineModerator):
    """The offline moderator, noting each text it reads in the shared log (and failing at first, if asked)."""

    def __init__(self, log: list[tuple[str, str]], failures: int = 0) -> None:
        self.log, self.failures = log, failures
        self.asked: list[str] = []

    async def check(self, text: str, *, language: Language) -> Verdict:
        self.asked.append(text)
        if self.failures:
            self.failures -= 1
            raise AdapterError("The safety check could not be reached.")
        self.log.append(("checked", text))
        return await super().check(text, language=language)


def moderated(
    story: StoryWriter, question: QuestionWriter, log: list[tuple[str, str]], *, failures: int = 0
) -> tuple[PageWorkers, WatchedModerator, list[tuple[str, str, Verdict]]]:
    from books.adapters.offline import OfflineIllustrator

    flags: list[tuple[str, str, Verdict]] = []

    async def keep_flag(section: str, text: str, verdict: Verdict) -> None:
        flags.append((section, text, verdict))

    moderator = WatchedModerator(log, failures)
    workers = PageWorkers(
        story,
        question,
        OfflineIllustrator(),
        moderator=moderator,
        keep_flag=keep_flag,
        moderation_attempts=3,
        moderation_backoff=0.001,
    )
    return workers, moderator, flags


def logging_recorder(log: list[tuple[str, str]]) -> tuple[list[tuple[str, str, Any]], Any]:
    events: list[tuple[str, str, Any]] = []

    async def on_event(section: str, what: str, payload: Any) -> None:
        events.append((section, str(what), payload))
        if what == "delta":
            log.append((f"shown {section}", payload))

    return events, on_event


def deltas_of(events: list[tuple[str, str, Any]], section: str) -> list[str]:
    return [payload for s, what, payload in events if s == section and what == "delta"]


async def test_text_is_shown_a_sentence_at_a_time_and_only_once_checked() -> None:
    log: list[tuple[str, str]] = []
    story = PiecesStory("Mina flew ", "a kite. It ", "went high", "er and higher. The ", "end.")
    workers, _, flags = moderated(story, PiecesQuestion("Where ", "will it go?"), log)
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), workers, on_event)

    assert result.ok and result.text == "Mina flew a kite. It went higher and higher. The end."
    assert deltas_of(events, "story") == ["Mina flew a kite. ", "It went higher and higher. ", "The end."]
    assert deltas_of(events, "question") == ["Where will it go?"]
    story_log = [entry for entry in log if entry[0] in ("checked", "shown story") and "Where" not in entry[1]]
    assert story_log == [
        ("checked", "Mina flew a kite. "),
        ("shown story", "Mina flew a kite. "),
        ("checked", "Mina flew a kite. It went higher and higher. "),
        ("shown story", "It went higher and higher. "),
        ("checked", "Mina flew a kite. It went higher and higher. The end."),  # the whole text, once more
        ("shown story", "The end."),
    ]
    assert flags == []


async def test_a_long_sentence_is_released_at_a_clause() -> None:
    log: list[tuple[str, str]] = []
    long_clause = "Mina and Bori walked past the tall trees and the quiet pond and the old stone bridge, "
    story = PiecesStory(long_clause, "and then they sat ", "down.")
    workers, _, _ = moderated(story, PiecesQuestion("Why?"), log)
    events, on_event = logging_recorder(log)
    await make_page(a_context(), workers, on_event)
    assert deltas_of(events, "story") == [long_clause, "and then they sat down."]


async def test_a_flagged_story_shows_nothing_of_what_was_flagged_and_asks_for_another_idea() -> None:
    log: list[tuple[str, str]] = []
    story = PiecesStory("Mina smiled. ", "Then the troll ", "killed the goat. ", "The end.")
    question = EchoQuestion()
    workers, _, flags = moderated(story, question, log)
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), workers, on_event)

    assert result.failures["story"] == "Let's try another idea"
    assert deltas_of(events, "story") == ["Mina smiled. "]
    assert not any("killed" in str(payload) for _, _, payload in events)
    assert ("story", "unhealthy", "Let's try another idea") in events
    assert question.seen_text == ""  # the question never saw the page
    ((section, text, verdict),) = flags
    assert (section, text) == ("story", "Mina smiled. Then the troll killed the goat. ")
    assert verdict.categories == ("violence",)


async def test_a_flagged_question_fails_alone() -> None:
    log: list[tuple[str, str]] = []
    story = PiecesStory("Mina flew a kite.")
    workers, _, flags = moderated(story, PiecesQuestion("Shall we ", "shoot them ", "down?"), log)
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), workers, on_event)

    assert result.failures == {"question": "Let's try another idea"}
    assert result.text == "Mina flew a kite."
    assert deltas_of(events, "question") == []
    assert [(s, t) for s, t, _ in flags] == [("question", "Shall we shoot them down?")]


async def test_a_moderator_that_stays_down_fails_the_section_and_shows_nothing() -> None:
    log: list[tuple[str, str]] = []
    workers, moderator, flags = moderated(
        PiecesStory("Mina flew a kite. ", "The end."), EchoQuestion(), log, failures=99
    )
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), workers, on_event)

    assert "safety check is not answering" in result.failures["story"]
    assert deltas_of(events, "story") == []
    # The first sentence's check tried three times before giving up (the whole text's, sent
    # beside it when the stream ended, was withdrawn then, after as many tries as it had had).
    assert moderator.asked.count("Mina flew a kite. ") == 3
    assert set(moderator.asked) <= {"Mina flew a kite. ", "Mina flew a kite. The end."}
    assert result.text == "" and flags == []


async def test_a_moderator_that_is_down_for_a_moment_is_waited_for() -> None:
    log: list[tuple[str, str]] = []
    workers, moderator, _ = moderated(
        PiecesStory("Mina flew a kite."), PiecesQuestion("Why?"), log, failures=2
    )
    events, on_event = logging_recorder(log)
    result = await make_page(a_context(), workers, on_event)
    assert result.ok and deltas_of(events, "story") == ["Mina flew a kite."]
    assert len(moderator.asked) == 3 + 1  # the story's check (after two failures) and the question's


# -- a moderator slower than the sentences ----------------------------------------------------------


class StoryThatFinishes(StoryWriter):
    """Writes its sentences as a stream does and notes when the last one is written; ``stalls``
    keeps the stream open after them (until it is stopped), ``breaks`` ends it with an error."""

    def __init__(self, *pieces: str, stalls: bool = False, breaks: bool = False) -> None:
        self.pieces, self.stalls, self.breaks = pieces, stalls, breaks
        self.written, self.stopped = asyncio.Event(), False

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        try:
            for piece in self.pieces:
                await asyncio.sleep(0)
                yield piece
            self.written.set()
            if self.breaks:
                raise AdapterError("The stream stopped half-way.")
            if self.stalls:
                await asyncio.sleep(10)
        except asyncio.CancelledError:
            self.stopped = True
            raise


class FirstCheckHeld(WatchedModerator):
    """Holds its first answer until ``release`` is set (two seconds at most), then reads as usual."""

    def __init__(self, log: list[tuple[str, str]], release: asyncio.Event) -> None:
        super().__init__(log)
        self.release = release
        self.released_in_time: bool | None = None

    async def check(self, text: str, *, language: Language) -> Verdict:
        if self.released_in_time is None:
            try:
                await asyncio.wait_for(self.release.wait(), timeout=2)
                self.released_in_time = True
            except TimeoutError:
                self.released_in_time = False
        return await super().check(text, language=language)


def story_workers(story: StoryWriter, moderator: OfflineModerator) -> PageWorkers:
    from books.adapters.offline import OfflineIllustrator

    return PageWorkers(story, PiecesQuestion("Why?"), OfflineIllustrator(), moderator=moderator)


async def test_sentences_that_arrive_during_a_check_are_read_by_the_next_one_together() -> None:
    log: list[tuple[str, str]] = []
    story = StoryThatFinishes("Mina flew a kite. ", "It went up. ", "It came down. ", "The end.")
    moderator = FirstCheckHeld(log, release=story.written)
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), story_workers(story, moderator), on_event)

    # The stream was read on while the first check was out, not one sentence per check.
    assert moderator.released_in_time is True
    assert result.ok and result.text == "Mina flew a kite. It went up. It came down. The end."
    story_checks = [text for what, text in log if what == "checked" and text != "Why?"]
    assert story_checks == ["Mina flew a kite. ", result.text]
    assert deltas_of(events, "story") == ["Mina flew a kite. ", "It went up. It came down. The end."]


class FirstHeldUntilAnotherIsAsked(WatchedModerator):
    """Holds its first answer until a second text is asked (two seconds at most)."""

    def __init__(self, log: list[tuple[str, str]]) -> None:
        super().__init__(log)
        self.another = asyncio.Event()
        self.released_in_time: bool | None = None
        self.sent: list[str] = []  # in the order they were asked (``asked``: as they were answered)

    async def check(self, text: str, *, language: Language) -> Verdict:
        self.sent.append(text)
        if len(self.sent) == 1:
            try:
                await asyncio.wait_for(self.another.wait(), timeout=2)
                self.released_in_time = True
            except TimeoutError:
                self.released_in_time = False
        else:
            self.another.set()
        return await super().check(text, language=language)


async def test_the_whole_texts_check_goes_beside_a_check_still_out_when_the_stream_ends() -> None:
    log: list[tuple[str, str]] = []
    story = StoryThatFinishes("Mina flew a kite. ", "It went up. ", "The end.")
    moderator = FirstHeldUntilAnotherIsAsked(log)
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), story_workers(story, moderator), on_event)

    # Asked while the first was out: had it waited for the first answer, that would have
    # waited two seconds for it.
    assert moderator.released_in_time is True
    assert result.ok and result.text == "Mina flew a kite. It went up. The end."
    story_checks = [text for text in moderator.sent if text != "Why?"]
    assert story_checks == ["Mina flew a kite. ", result.text]
    # Shown in order all the same: the first sentence once its check passed, then the rest.
    assert deltas_of(events, "story") == ["Mina flew a kite. ", "It went up. The end."]


async def test_a_flag_on_the_check_still_out_withdraws_the_whole_texts_check_beside_it() -> None:
    log: list[tuple[str, str]] = []
    story = StoryThatFinishes("Then the troll killed the goat. ", "It went up. ", "The end.")
    moderator = FirstHeldUntilAnotherIsAsked(log)
    flags: list[tuple[str, str, Verdict]] = []

    async def keep_flag(section: str, text: str, verdict: Verdict) -> None:
        flags.append((section, text, verdict))

    workers = story_workers(story, moderator)
    workers.keep_flag = keep_flag
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), workers, on_event)

    assert moderator.released_in_time is True  # the whole text's check had been sent
    assert result.failures["story"] == "Let's try another idea"
    assert deltas_of(events, "story") == []
    # One flag, on what was read first; the whole text's verdict was never taken.
    assert [(section, text) for section, text, _ in flags] == [("story", "Then the troll killed the goat. ")]


async def test_a_stream_that_breaks_while_a_check_is_out_shows_only_what_was_checked() -> None:
    log: list[tuple[str, str]] = []
    story = StoryThatFinishes("Mina flew a kite. ", "It went up. ", "It came", breaks=True)
    moderator = FirstCheckHeld(log, release=story.written)
    events, on_event = logging_recorder(log)

    result = await make_page(a_context(), story_workers(story, moderator), on_event)

    assert moderator.released_in_time is True
    assert result.failures["story"] == "The stream stopped half-way."
    assert deltas_of(events, "story") == ["Mina flew a kite. "]
    assert ("story", "unhealthy", "The stream stopped half-way.") in events


async def test_stopping_a_page_stops_the_stream_being_read() -> None:
    log: list[tuple[str, str]] = []
    story = StoryThatFinishes("Mina flew a kite. ", stalls=True)
    first_shown = asyncio.Event()
    events, on_event = logging_recorder(log)

    async def watch(section: str, what: str, payload: Any) -> None:
        await on_event(section, what, payload)
        if (section, what) == ("story", "delta"):
            first_shown.set()

    run = asyncio.create_task(make_page(a_context(), story_workers(story, WatchedModerator(log)), watch))
    await asyncio.wait_for(first_shown.wait(), timeout=2)
    run.cancel()
    await asyncio.gather(run, return_exceptions=True)

    assert run.cancelled() and story.stopped
    assert deltas_of(events, "story") == ["Mina flew a kite. "]
