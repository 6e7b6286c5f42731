"""What the book asks of whoever fills a page: the ports.

Each port is a small base class listing the methods an adapter implements (the shape of
Django's session backends). Settings name the adapter by dotted path; ``story_writer()``
and friends build the configured one. Adapters raise ``AdapterError`` only.
"""

from __future__ import annotations

import abc
import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, ClassVar

from books.domain import DEFAULT_AGE_BAND, AgeBand, Character, Language

# How much of the story so far goes into a prompt before older pages are shortened.
STORY_SO_FAR_BUDGET = 2400


class AdapterError(Exception):
    """An upstream failure. ``permanent`` means retrying the same request will not help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class PageSoFar:
    number: int
    text: str


@dataclass(frozen=True)
class StoryContext:
    """Everything one AI call needs: the AI is stateless, so every call carries this."""

    characters: tuple[Character, ...]
    language: Language
    page_number: int
    page_count: int
    pages_so_far: tuple[PageSoFar, ...]
    child_input: str
    book_key: str = ""
    """Stable per draft; lets the offline storyteller vary between books."""
    age_band: AgeBand = DEFAULT_AGE_BAND
    """How old the child is: sentence length, vocabulary, page length and new words follow it."""

    @property
    def is_last_page(self) -> bool:
        return self.page_number == self.page_count

    def character_sheet(self) -> str:
        """One line a character; goes into every picture prompt so characters stay the same."""
        return "\n".join(
            f"- {c.name}: {c.description}" if c.description else f"- {c.name}" for c in self.characters
        )

    def story_so_far(self, budget: int = STORY_SO_FAR_BUDGET) -> str:
        """The pages so far, newest kept whole; once too long, older pages are cut to their start."""
        lines = [f"Page {p.number}: {p.text}" for p in self.pages_so_far]
        if sum(len(line) for line in lines) <= budget:
            return "\n".join(lines)
        kept: list[str] = []
        remaining = budget
        for line in reversed(lines):
            if len(line) <= remaining:
                kept.append(line)
                remaining -= len(line)
            else:
                kept.append(line[: max(remaining, 80)].rstrip() + " …")
                remaining = 0
        return "\n".join(reversed(kept))


@dataclass(frozen=True)
class Picture:
    data: bytes
    content_type: str = "image/png"
    extension: str = "png"
    meta: dict[str, Any] = field(default_factory=dict)


class StoryWriter(abc.ABC):
    """Writes one page of the story (the seed's ContextGenerator)."""

    @abc.abstractmethod
    def write(self, context: StoryContext) -> AsyncIterator[str]:
        """Yield the page's text in pieces, in order; joined they are the page."""


class QuestionWriter(abc.ABC):
    """Asks the child the question that invites the next page."""

    @abc.abstractmethod
    def ask(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        """Yield the question in pieces, in order."""


class WordExplainer(abc.ABC):
    """Picks two or three words from the page and explains them for a child."""

    @abc.abstractmethod
    def explain(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        """Yield the explanations in pieces, in order: one "word — meaning" line per word."""


class Illustrator(abc.ABC):
    """Draws one picture a page, characters kept alike through the character sheet."""

    @abc.abstractmethod
    async def draw(self, context: StoryContext) -> Picture:
        """Return the finished picture's bytes (never a provider URL: those expire)."""


class Concern(StrEnum):
    """Why a moderator holds text back; every adapter maps its own categories onto these."""

    VIOLENCE = "violence"
    SEXUAL = "sexual"
    SELF_HARM = "self_harm"
    HATE = "hate"
    """Hate, insults and harassment."""
    ILLICIT = "illicit"
    PERSONAL_DETAILS = "personal_details"
    """A phone number, an e-mail or a street address: nothing a child should put in a book."""


@dataclass(frozen=True)
class Verdict:
    flagged: bool
    categories: tuple[str, ...] = ()
    """``Concern`` values, sorted; empty when nothing was found."""
    reason: str = ""
    """A short note for staff on what was found (never shown to the child)."""

    @classmethod
    def clean(cls) -> Verdict:
        return cls(flagged=False)


class Moderator(abc.ABC):
    """Reads text before it is used or shown and says whether a child should meet it."""

    name: ClassVar[str] = ""
    """Recorded with every flag, so staff know which moderator raised it."""

    @abc.abstractmethod
    async def check(self, text: str, *, language: Language) -> Verdict:
        """Judge ``text``; raise ``AdapterError`` when no answer can be had."""

    async def check_typed_words(self, text: str, *, language: Language) -> Verdict:
        """Judge words a family has just typed, while they wait: ``check``, unless the adapter
        can answer these sooner than the text it reads as a page is made."""
        return await self.check(text, language=language)

    async def check_patiently(
        self,
        text: str,
        *,
        language: Language,
        attempts: int = 3,
        backoff: float = 0.5,
        typed_words: bool = False,
    ) -> Verdict:
        """``check`` (or ``check_typed_words``) with a few retries and a growing pause; the
        last failure is raised.

        A moderator that is briefly unreachable must not fail a page, but one that stays
        down must not let text through unchecked either.
        """
        check = self.check_typed_words if typed_words else self.check
        for attempt in range(1, max(attempts, 1) + 1):
            try:
                return await check(text, language=language)
            except AdapterError as error:
                if error.permanent or attempt >= attempts:
                    raise
                await asyncio.sleep(backoff * 2 ** (attempt - 1))
        raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises


def _build(setting_name: str) -> Any:
    from django.conf import settings
    from django.utils.module_loading import import_string

    return import_string(settings.LITTLEWRITER[setting_name])()


def story_writer() -> StoryWriter:
    writer: StoryWriter = _build("STORY_WRITER")
    return writer


def question_writer() -> QuestionWriter:
    writer: QuestionWriter = _build("QUESTION_WRITER")
    return writer


def word_explainer() -> WordExplainer:
    explainer: WordExplainer = _build("WORD_EXPLAINER")
    return explainer


def illustrator() -> Illustrator:
    drawer: Illustrator = _build("ILLUSTRATOR")
    return drawer


def moderator() -> Moderator:
    checker: Moderator = _build("MODERATOR")
    return checker


ADAPTER_SETTINGS = ("STORY_WRITER", "QUESTION_WRITER", "ILLUSTRATOR", "WORD_EXPLAINER", "MODERATOR")


def load_adapters() -> None:
    """Import every configured adapter now, so a wrong dotted path stops the server at start
    and the first page does not import the OpenAI SDK on the event loop (half a second)."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured
    from django.utils.module_loading import import_string

    for name in ADAPTER_SETTINGS:
        path = settings.LITTLEWRITER[name]
        try:
            import_string(path)
        except ImportError as error:
            raise ImproperlyConfigured(
                f"LITTLEWRITER[{name!r}] = {path!r} cannot be imported: {error}"
            ) from error
