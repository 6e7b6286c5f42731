"""Makes one page: every section concurrently, each waiting only for what it needs.

The pipeline knows the ports, not the adapters, and reports every piece it receives to
an ``on_event`` callback (the live tabs listen there). It returns when the slowest
section is done, never after the sum of them. A retry runs only the chosen sections
and takes the others from an earlier result.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from django.utils.translation import gettext

from books.ports import (
    AdapterError,
    Illustrator,
    Picture,
    QuestionWriter,
    StoryContext,
    StoryWriter,
    WordExplainer,
)
from streaming.sections import BY_NAME, Section, SectionStatus, sections_for

EventSink = Callable[[str, str, Any], Awaitable[None]]
"""``await on_event(section_name, what, payload)``; ``what`` is a status, "delta" or "picture"."""

PictureKeeper = Callable[[Picture], Awaitable[str]]
"""Stores a picture the moment it is drawn and returns its storage name."""


async def _ignore_event(section: str, what: str, payload: Any) -> None:
    return None


async def _no_storage(picture: Picture) -> str:
    return ""


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


async def make_page(
    context: StoryContext,
    workers: PageWorkers,
    on_event: EventSink = _ignore_event,
    *,
    only: set[str] | None = None,
    earlier: PageResult | None = None,
) -> PageResult:
    """Run the page's sections (or ``only`` those, the rest taken from ``earlier``).

    A failed section is recorded in ``failures`` and the others go on.
    """
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
            await _fill(section, context, workers, result, on_event)
            await on_event(section.name, SectionStatus.COMPLETE, None)
        except (SectionFailed, AdapterError) as failure:
            reason = failure.reason if isinstance(failure, SectionFailed) else str(failure)
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
    if section.name == "story":
        result.text = (await _collect(section, workers.story.write(context), on_event)).strip()
        if not result.text:
            raise SectionFailed(section.name, gettext("the storyteller sent back an empty page"))
    elif section.name == "question":
        result.question = (
            await _collect(section, workers.question.ask(context, result.text), on_event)
        ).strip()
        if not result.question:
            raise SectionFailed(section.name, gettext("the storyteller sent back no question"))
    elif section.name == "new_words":
        assert workers.words is not None
        result.new_words = (
            await _collect(section, workers.words.explain(context, result.text), on_event)
        ).strip()
    elif section.name == "picture":
        result.picture = await workers.illustrator.draw(context)
        result.picture_name = await workers.keep_picture(result.picture)
        await on_event(section.name, "picture", result.picture_name)
    else:  # pragma: no cover - a section added to SECTIONS without a filler here
        raise SectionFailed(section.name, gettext("no one fills this section"))


async def _collect(section: Section, pieces: AsyncIterator[str], on_event: EventSink) -> str:
    collected: list[str] = []
    async for piece in pieces:
        collected.append(piece)
        await on_event(section.name, "delta", piece)
    return "".join(collected)
