"""The sections of a page and their statuses: data in one place.

Adding a section is one entry here plus the port that fills it (``streaming.pipeline``
maps a section's name to its filler). ``needs`` names the sections whose result it
waits for; the rest start at once and run concurrently. A page is kept once every
*required* section is complete; an optional one that failed can be made again later.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from django.utils.translation import gettext, gettext_noop

# Badges and tab names are shown in the reader's language: the names below are marked
# English, translated when rendered (``SectionStatus.label``, ``{% translate section.label %}``).
_STATUS_LABELS = {
    "not_started": gettext_noop("Not started"),
    "streaming": gettext_noop("Streaming"),
    "complete": gettext_noop("Complete"),
    "unhealthy": gettext_noop("Needs a retry"),
}


class SectionStatus(StrEnum):
    NOT_STARTED = "not_started"
    STREAMING = "streaming"
    COMPLETE = "complete"
    UNHEALTHY = "unhealthy"

    @property
    def label(self) -> str:
        return gettext(_STATUS_LABELS[self.value])


class SectionKind(StrEnum):
    TEXT = "text"
    PICTURE = "picture"


@dataclass(frozen=True)
class Section:
    name: str
    label: str
    """Marked English; templates translate it when shown."""
    kind: SectionKind
    needs: tuple[str, ...] = ()
    required: bool = True
    skipped_on_last_page: bool = False
    """The question invites the next page, so the last page has none."""
    waiting: str = ""
    """What its tab says while it waits for the sections it needs (marked English, as ``label``)."""


STORY = Section("story", gettext_noop("Story"), SectionKind.TEXT)
PICTURE = Section("picture", gettext_noop("Picture"), SectionKind.PICTURE)
_AFTER_THE_STORY = gettext_noop("This part starts once the story is written.")
QUESTION = Section(
    "question",
    gettext_noop("Question"),
    SectionKind.TEXT,
    needs=("story",),
    skipped_on_last_page=True,
    waiting=_AFTER_THE_STORY,
)
NEW_WORDS = Section(
    "new_words",
    gettext_noop("New words"),
    SectionKind.TEXT,
    needs=("story",),
    required=False,
    waiting=_AFTER_THE_STORY,
)

SECTIONS: tuple[Section, ...] = (STORY, PICTURE, QUESTION, NEW_WORDS)
BY_NAME = {section.name: section for section in SECTIONS}


def sections_for(*, is_last_page: bool) -> tuple[Section, ...]:
    return tuple(s for s in SECTIONS if not (is_last_page and s.skipped_on_last_page))


def with_dependents(names: set[str], *, is_last_page: bool) -> set[str]:
    """The named sections and every section that needs one of them, transitively."""
    chosen = set(names)
    changed = True
    while changed:
        changed = False
        for section in sections_for(is_last_page=is_last_page):
            if section.name not in chosen and chosen.intersection(section.needs):
                chosen.add(section.name)
                changed = True
    return chosen
