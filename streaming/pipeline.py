"""Makes one page: every section concurrently, each waiting only for what it needs.

The pipeline knows the ports, not the adapters, and reports every piece it receives to
an ``on_event`` callback (the live tabs listen there). It returns when the slowest
section is done, never after the sum of them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from books.ports import AdapterError, Illustrator, Picture, QuestionWriter, StoryContext, StoryWriter
from streaming.sections import Section, SectionStatus, sections_for

EventSink = Callable[[str, str, Any], Awaitable[None]]
"""``await on_event(section_name, what, payload)``; ``what`` is a status or "delta"."""


async def _ignore_event(section: str, what: str, payload: Any) -> None:
    return None


class SectionFailed(Exception):
    def __init__(self, section: str, reason: str, *, permanent: bool = False) -> None:
        super().__init__(f"{section}: {reason}")
        self.section = section
        self.reason = reason
        self.permanent = permanent


@dataclass
class PageResult:
    text: str = ""
    question: str = ""
    picture: Picture | None = None
    failures: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.failures


@dataclass
class PageWorkers:
    story: StoryWriter
    question: QuestionWriter
    illustrator: Illustrator

    async def close(self) -> None:
        """Let adapters that hold connections (the OpenAI client) release them."""
        for worker in (self.story, self.question, self.illustrator):
            close = getattr(worker, "close", None)
            if close is not None:
                await close()


async def make_page(
    context: StoryContext, workers: PageWorkers, on_event: EventSink = _ignore_event
) -> PageResult:
    """Run every section of the page; a failed section is recorded, the others go on."""
    sections = sections_for(is_last_page=context.is_last_page)
    result = PageResult()
    done: dict[str, asyncio.Event] = {s.name: asyncio.Event() for s in sections}

    async def run(section: Section) -> None:
        try:
            for needed in section.needs:
                await done[needed].wait()
                if needed in result.failures:
                    raise SectionFailed(section.name, f"it needs the {needed}, which could not be made")
            await on_event(section.name, SectionStatus.STREAMING, None)
            await _fill(section, context, workers, result, on_event)
            await on_event(section.name, SectionStatus.COMPLETE, None)
        except SectionFailed as failure:
            result.failures[section.name] = failure.reason
            await on_event(section.name, SectionStatus.UNHEALTHY, failure.reason)
        except AdapterError as error:
            result.failures[section.name] = str(error)
            await on_event(section.name, SectionStatus.UNHEALTHY, str(error))
        finally:
            done[section.name].set()

    async with asyncio.TaskGroup() as group:
        for section in sections:
            group.create_task(run(section))
    return result


async def _fill(
    section: Section, context: StoryContext, workers: PageWorkers, result: PageResult, on_event: EventSink
) -> None:
    if section.name == "story":
        result.text = (await _collect(section, workers.story.write(context), on_event)).strip()
        if not result.text:
            raise SectionFailed(section.name, "the storyteller sent back an empty page")
    elif section.name == "question":
        result.question = (
            await _collect(section, workers.question.ask(context, result.text), on_event)
        ).strip()
    elif section.name == "picture":
        result.picture = await workers.illustrator.draw(context)
        await on_event(section.name, "delta", result.picture)
    else:  # pragma: no cover - a section added to SECTIONS without a filler here
        raise SectionFailed(section.name, "no one fills this section")


async def _collect(section: Section, pieces: AsyncIterator[str], on_event: EventSink) -> str:
    collected: list[str] = []
    async for piece in pieces:
        collected.append(piece)
        await on_event(section.name, "delta", piece)
    return "".join(collected)
