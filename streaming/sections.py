"""The sections of a page and their statuses: data in one place.

Adding a section is one entry here plus the port that fills it. ``needs`` names the
sections whose result it waits for; the rest start at once and run concurrently.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class SectionStatus(StrEnum):
    NOT_STARTED = "not_started"
    STREAMING = "streaming"
    COMPLETE = "complete"
    UNHEALTHY = "unhealthy"


class SectionKind(StrEnum):
    TEXT = "text"
    PICTURE = "picture"


@dataclass(frozen=True)
class Section:
    name: str
    label: str
    kind: SectionKind
    needs: tuple[str, ...] = ()
    skipped_on_last_page: bool = False
    """The question invites the next page, so the last page has none."""


STORY = Section("story", "Story", SectionKind.TEXT)
PICTURE = Section("picture", "Picture", SectionKind.PICTURE)
QUESTION = Section("question", "Question", SectionKind.TEXT, needs=("story",), skipped_on_last_page=True)

SECTIONS: tuple[Section, ...] = (STORY, PICTURE, QUESTION)


def sections_for(*, is_last_page: bool) -> tuple[Section, ...]:
    return tuple(s for s in SECTIONS if not (is_last_page and s.skipped_on_last_page))
