"""Makes one page: every section concurrently, each waiting only for what it needs.

The pipeline knows the ports, not the adapters, and reports every piece it receives to
an ``on_event`` callback (the live tabs listen there). It returns when the slowest
section is done, never after the sum of them. A retry runs only the chosen sections
and takes the others from an earlier result.

Generated text is read by the moderator before anyone sees it: pieces are held back and
released a sentence at a time (or as many sentences as arrived during the last check) once
the text so far is checked, and the whole text is checked again at the end. Flagged text
fails its section ("Let's try another idea"); a moderator that stays down fails it too.
Unchecked text never reaches ``on_event``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext

from books.domain import Language
from books.ports import (
    AdapterError,
    Illustrator,
    Moderator,
    Picture,
    QuestionWriter,
    StoryContext,
    StoryWriter,
    Verdict,
    WordExplainer,
)
from streaming.sections import BY_NAME, Section, SectionStatus, sections_for
from usage.meter import PageMeter

log = logging.getLogger(__name__)

EventSink = Callable[[str, str, Any], Awaitable[None]]
"""``await on_event(section_name, what, payload)``; ``what`` is a status, "delta" or "picture"."""

PictureKeeper = Callable[[Picture], Awaitable[str]]
"""Stores a picture the moment it is drawn and returns its storage name."""

FlagKeeper = Callable[[str, str, Verdict], Awaitable[None]]
"""``await keep(section_name, text, verdict)``: records generated text the moderator held back."""

# Where held-back text may be released: after a sentence (and the space that follows it) or
# a line; after a clause too once enough is waiting, so a long sentence still streams.
SENTENCE_END = re.compile(r"[.!?…。！？]+[\"'”’)\]]*\s+|\n+")
CLAUSE_END = re.compile(r"[,;:，、]\s+")
CLAUSE_RELEASE_CHARACTERS = 80


async def _ignore_event(section: str, what: str, payload: Any) -> None:
    return None


async def _no_storage(picture: Picture) -> str:
    return ""


async def _no_flag_record(section: str, text: str, verdict: Verdict) -> None:
    return None


class SectionFailed(Exception):
    def __init__(self, section: str, reason: str) -> None:
        super().__init__(f"{section}: {reason}")
        self.section = section
        self.reason = reason


@dataclass
class PageResult:
    text: str = ""
    question: str = ""
    new_words: str = ""
    picture: Picture | None = None
    picture_name: str = ""
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures

    def required_failures(self, sections: tuple[Section, ...]) -> dict[str, str]:
        required = {s.name for s in sections if s.required}
        return {name: reason for name, reason in self.failures.items() if name in required}


@dataclass
class PageWorkers:
    story: StoryWriter
    question: QuestionWriter
    illustrator: Illustrator
    words: WordExplainer | None = None
    keep_picture: PictureKeeper = _no_storage
    moderator: Moderator | None = None
    """Reads generated text before it is shown. The app always sets one; only tests of the
    pipeline's own timing leave it out."""
    keep_flag: FlagKeeper = _no_flag_record
    moderation_attempts: int = 3
    moderation_backoff: float = 0.5


async def make_page(
    context: StoryContext,
    workers: PageWorkers,
    on_event: EventSink = _ignore_event,
    *,
    only: set[str] | None = None,
    earlier: PageResult | None = None,
    meter: PageMeter | None = None,
) -> PageResult:
    """Run the page's sections (or ``only`` those, the rest taken from ``earlier``).

    A failed section is recorded in ``failures`` and the others go on. With a ``meter``,
    each section's adapter reports what it used into that section's reading.
    """
    meter = meter if meter is not None else PageMeter()
    sections = tuple(
        s for s in sections_for(is_last_page=context.is_last_page) if s.name != "new_words" or workers.words
    )
    result = _carried_over(earlier, only)
    done: dict[str, asyncio.Event] = {s.name: asyncio.Event() for s in sections}

    async def run(section: Section) -> None:
        try:
            for needed in section.needs:
                await done[needed].wait()
                if needed in result.failures:
                    raise SectionFailed(
                        section.name,
                        gettext("it needs the %(section)s, which could not be made")
                        % {"section": gettext(BY_NAME[needed].label).lower()},
                    )
            await on_event(section.name, SectionStatus.STREAMING, None)
            with meter.section(section.name):
                await _fill(section, context, workers, result, on_event)
            await on_event(section.name, SectionStatus.COMPLETE, None)
        except (SectionFailed, AdapterError) as failure:
            reason = failure.reason if isinstance(failure, SectionFailed) else str(failure)
            # The family reads the reason on the tab; the log keeps what lay under it too.
            underneath = failure.__cause__ or failure
            log.warning("section %s is unhealthy: %s (%r)", section.name, reason, underneath)
            result.failures[section.name] = reason
            await on_event(section.name, SectionStatus.UNHEALTHY, reason)
        finally:
            done[section.name].set()

    async with asyncio.TaskGroup() as group:
        for section in sections:
            if only is None or section.name in only:
                group.create_task(run(section))
            else:
                done[section.name].set()
    return result


def _carried_over(earlier: PageResult | None, only: set[str] | None) -> PageResult:
    if earlier is None or only is None:
        return PageResult()
    kept = PageResult(
        text=earlier.text,
        question=earlier.question,
        new_words=earlier.new_words,
        picture=earlier.picture,
        picture_name=earlier.picture_name,
    )
    kept.failures = {name: reason for name, reason in earlier.failures.items() if name not in only}
    return kept


async def _fill(
    section: Section, context: StoryContext, workers: PageWorkers, result: PageResult, on_event: EventSink
) -> None:
    def collect(pieces: AsyncIterator[str]) -> Awaitable[str]:
        return _collect(section, pieces, on_event, _Screen(section.name, workers, context.language))

    if section.name == "story":
        result.text = (await collect(workers.story.write(context))).strip()
        if not result.text:
            raise SectionFailed(section.name, gettext("the storyteller sent back an empty page"))
    elif section.name == "question":
        result.question = (await collect(workers.question.ask(context, result.text))).strip()
        if not result.question:
            raise SectionFailed(section.name, gettext("the storyteller sent back no question"))
    elif section.name == "new_words":
        assert workers.words is not None
        result.new_words = (await collect(workers.words.explain(context, result.text))).strip()
    elif section.name == "picture":
        result.picture = await workers.illustrator.draw(context)
        result.picture_name = await workers.keep_picture(result.picture)
        await on_event(section.name, "picture", result.picture_name)
    else:  # pragma: no cover - a section added to SECTIONS without a filler here
        raise SectionFailed(section.name, gettext("no one fills this section"))


class _Screen:
    """The moderator's reading of one section's text, with retries and flags recorded.

    Asking and judging are apart: a check can be sent while another is on its way, and
    their verdicts are still taken in order, so a flag is recorded once and in order.
    """

    def __init__(self, section: str, workers: PageWorkers, language: Language) -> None:
        self.section, self.workers, self.language = section, workers, language
        self.checked = ""

    @property
    def active(self) -> bool:
        return self.workers.moderator is not None

    def _reader_for(self, text: str) -> Moderator | None:
        """The moderator, if ``text`` still needs its reading."""
        moderator = self.workers.moderator
        return None if moderator is None or text == self.checked else moderator

    def ask(self, text: str) -> asyncio.Future[Verdict | None]:
        """Send ``text`` to the moderator now; ``judge`` takes the answer (None: nothing to read)."""
        moderator = self._reader_for(text)
        if moderator is None:
            done: asyncio.Future[Verdict | None] = asyncio.get_running_loop().create_future()
            done.set_result(None)
            return done
        return asyncio.ensure_future(self._read(moderator, text))

    async def _read(self, moderator: Moderator, text: str) -> Verdict:
        return await moderator.check_patiently(
            text,
            language=self.language,
            attempts=self.workers.moderation_attempts,
            backoff=self.workers.moderation_backoff,
        )

    async def judge(self, text: str, asked: Awaitable[Verdict | None]) -> None:
        """Return if ``text`` may be shown; raise ``SectionFailed`` if not, or if no one can say."""
        try:
            verdict = await asked
        except AdapterError as error:
            raise SectionFailed(
                self.section,
                gettext(
                    "The safety check is not answering, so this part is not shown. Try again in a moment."
                ),
            ) from error
        if verdict is None:
            return
        if verdict.flagged:
            await self.workers.keep_flag(self.section, text, verdict)
            raise SectionFailed(self.section, gettext("Let's try another idea"))
        self.checked = text

    async def check(self, text: str) -> None:
        """``ask`` and ``judge`` in one, the moderator's call awaited right here."""
        moderator = self._reader_for(text)
        if moderator is None:
            return
        await self.judge(text, self._read(moderator, text))


def release_point(text: str, shown: int) -> int:
    """How far ``text`` may be released: the end of its last whole sentence (or long clause)."""
    point = shown
    for match in SENTENCE_END.finditer(text, shown):
        point = match.end()
    if point == shown and len(text) - shown >= CLAUSE_RELEASE_CHARACTERS:
        for match in CLAUSE_END.finditer(text, shown):
            point = match.end()
    return point


async def _collect(section: Section, pieces: AsyncIterator[str], on_event: EventSink, screen: _Screen) -> str:
    if not screen.active:
        collected: list[str] = []
        async for piece in pieces:
            collected.append(piece)
            await on_event(section.name, "delta", piece)
        return "".join(collected)
    # The stream is read in a task of its own while the moderator reads: each check takes
    # every sentence that has arrived by the time it starts, so a moderator slower than the
    # sentences costs fewer checks, not a lag that grows sentence after sentence.
    text, point, shown = "", 0, 0
    more = asyncio.Event()

    checking = -1  # how far the check on its way reads (-1: none is)
    whole: asyncio.Future[Verdict | None] | None = None

    async def read() -> None:
        nonlocal text, point, whole
        try:
            async for piece in pieces:
                text += piece
                found = release_point(text, point)
                if found > point:
                    point = found
                    more.set()
            if 0 <= checking < len(text):
                # The stream ended while a check of part of it is out: the whole text's check
                # goes now, beside it, not after it (a slow moderator's reading less to wait).
                whole = screen.ask(text)
        finally:
            more.set()

    reader = asyncio.ensure_future(read())
    try:
        # Once the text is whole (or the stream broke), the last check below reads the rest.
        while not reader.done():
            if point == shown:
                more.clear()
                await more.wait()
                continue
            checking = release = point
            # The text so far, not just the new sentences: meaning can hang on what came before.
            await screen.check(text[:release])
            checking = -1
            await on_event(section.name, "delta", text[shown:release])
            shown = release
        await reader  # the stream's own error, if it broke
        await (screen.check(text) if whole is None else screen.judge(text, whole))
    finally:
        # Stopped, refused or broken: the upstream stream is closed, the whole text's check
        # withdrawn if it is out, and a reader that failed while a check was refusing the
        # text has its error taken here, not logged as lost.
        reader.cancel()
        if whole is not None:
            whole.cancel()
        await asyncio.gather(reader, *([whole] if whole is not None else []), return_exceptions=True)
    if len(text) > shown:
        await on_event(section.name, "delta", text[shown:])
    return text
