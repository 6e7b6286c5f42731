"""The book's rules, in plain Python.

A book in progress (a *draft*) walks the diagram of the product brief:

    bookInit ──set_up──▶ bookInProgress ──begin_page──▶ generating
                              ▲                             │
                              └──────complete_page──────────┘  (or abandon_page)
    bookInProgress ──(last page completed)──▶ done ──finish(title)──▶ finished book

Nothing here imports Django or an AI SDK; the web layer turns ``DomainError`` into a
4xx answer with the error's sentence.

Sentences are written in English and marked with ``gettext_noop`` (the name makemessages
looks for), with their numbers kept apart as ``%(name)s`` parameters. ``str(error)``
translates the sentence when it is shown, through the translator the books app installs
at start-up (Django's ``gettext``): the rules stay plain Python, the people see their own
language, and a sentence is never frozen in the language of whoever made it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from typing import Any

MIN_CHARACTERS, MAX_CHARACTERS = 1, 6
MAX_NAME_LENGTH, MAX_DESCRIPTION_LENGTH = 40, 200
MIN_PAGES, MAX_PAGES = 2, 16
MAX_CHILD_INPUT_LENGTH = 300
MAX_TITLE_LENGTH = 80
MAX_PAGE_TEXT_LENGTH = 3000
MAX_QUESTION_LENGTH = 300


def gettext_noop(message: str) -> str:
    """Mark a sentence for translation; it is translated when shown (``str(error)``)."""
    return message


class BookState(StrEnum):
    INIT = "bookInit"
    IN_PROGRESS = "bookInProgress"
    GENERATING = "generating"
    DONE = "done"


class Language(StrEnum):
    ENGLISH = "en"
    KOREAN = "ko"

    @property
    def label(self) -> str:
        """The language's English name (prompts use it; the interface translates it when shown)."""
        return {"en": gettext_noop("English"), "ko": gettext_noop("Korean (한국어)")}[self.value]


class AgeBand(StrEnum):
    """How old the child making the book is; it shapes how the pages are written."""

    THREE_TO_FIVE = "3-5"
    SIX_TO_EIGHT = "6-8"
    NINE_TO_TEN = "9-10"

    @property
    def sentences(self) -> tuple[int, int]:
        """The fewest and most sentences on a page."""
        return {"3-5": (2, 3), "6-8": (3, 4), "9-10": (4, 6)}[self.value]

    @property
    def words_per_sentence(self) -> int:
        """The longest sentence, in words (roughly: Korean counts spaced words)."""
        return {"3-5": 8, "6-8": 12, "9-10": 18}[self.value]

    @property
    def new_words(self) -> tuple[int, int]:
        """How many words the *new words* section explains: the fewest and the most."""
        return {"3-5": (2, 2), "6-8": (2, 3), "9-10": (3, 3)}[self.value]


# Drafts started before children had profiles were written for this band.
DEFAULT_AGE_BAND = AgeBand.SIX_TO_EIGHT


class PageSource(StrEnum):
    AI = "ai"
    PARENT = "parent"


_translate: Callable[[str], str] = gettext_noop


def set_translator(translate: Callable[[str], str]) -> None:
    """Install the function that turns a marked sentence into the reader's language."""
    global _translate
    _translate = translate


class DomainError(Exception):
    """A move the book's rules do not allow; ``str(error)`` is a sentence for people.

    ``message`` is a marked English sentence; ``params`` fill its ``%(name)s`` places
    after it is translated.
    """

    status = 400

    def __init__(self, message: str, **params: object) -> None:
        super().__init__(message)
        self.message = message
        self.params = params

    def __str__(self) -> str:
        sentence = _translate(self.message)
        return sentence % self.params if self.params else sentence


class InvalidBook(DomainError):
    """The input breaks a rule (too many characters, an empty title...)."""


class IllegalMove(DomainError):
    """The move does not fit the book's current state."""

    status = 409


class AlreadyGenerating(IllegalMove):
    """A page of this book is being made right now."""


@dataclass(frozen=True)
class Character:
    name: str
    description: str

    @classmethod
    def create(cls, name: str, description: str) -> Character:
        name, description = name.strip(), description.strip()
        if not name:
            raise InvalidBook(gettext_noop("Every character needs a name."))
        if len(name) > MAX_NAME_LENGTH:
            raise InvalidBook(
                gettext_noop("A character's name can be at most %(limit)d characters long."),
                limit=MAX_NAME_LENGTH,
            )
        if len(description) > MAX_DESCRIPTION_LENGTH:
            raise InvalidBook(
                gettext_noop("A character's description can be at most %(limit)d characters long."),
                limit=MAX_DESCRIPTION_LENGTH,
            )
        return cls(name=name, description=description)


@dataclass(frozen=True)
class DraftPage:
    number: int
    text: str
    question: str
    picture: str
    """Storage name of the page's picture ("" when it has none)."""
    child_input: str
    source: PageSource = PageSource.AI
    new_words: str = ""
    """Two or three words from the page explained for a child ("" when there are none)."""


def clean_child_input(child_input: str) -> str:
    cleaned = child_input.strip()
    if not cleaned:
        raise InvalidBook(gettext_noop("Tell us what happens next — a few words are enough."))
    if len(cleaned) > MAX_CHILD_INPUT_LENGTH:
        raise InvalidBook(
            gettext_noop("What happens next can be at most %(limit)d characters long."),
            limit=MAX_CHILD_INPUT_LENGTH,
        )
    return cleaned


def clean_page_text(text: str) -> str:
    cleaned = text.strip()
    if not cleaned:
        raise InvalidBook(gettext_noop("A page needs some words."))
    if len(cleaned) > MAX_PAGE_TEXT_LENGTH:
        raise InvalidBook(
            gettext_noop("A page can be at most %(limit)d characters long."), limit=MAX_PAGE_TEXT_LENGTH
        )
    return cleaned


def clean_question(question: str) -> str:
    cleaned = question.strip()
    if len(cleaned) > MAX_QUESTION_LENGTH:
        raise InvalidBook(
            gettext_noop("A question can be at most %(limit)d characters long."), limit=MAX_QUESTION_LENGTH
        )
    return cleaned


def clean_title(title: str) -> str:
    cleaned = title.strip()
    if not cleaned:
        raise InvalidBook(gettext_noop("Give your book a title."))
    if len(cleaned) > MAX_TITLE_LENGTH:
        raise InvalidBook(
            gettext_noop("A title can be at most %(limit)d characters long."), limit=MAX_TITLE_LENGTH
        )
    return cleaned


@dataclass(frozen=True)
class FinishedBook:
    """What a finished draft hands to storage: everything a kept book needs."""

    title: str
    language: Language
    characters: tuple[Character, ...]
    pages: tuple[DraftPage, ...]


@dataclass
class BookDraft:
    """The one book a user has in progress."""

    draft_id: str
    owner_id: int
    state: BookState = BookState.INIT
    characters: list[Character] = field(default_factory=list)
    page_count: int = 0
    language: Language = Language.ENGLISH
    pages: list[DraftPage] = field(default_factory=list)
    pending_input: str = ""
    """The child's input for the page being made, or the parent's own words for it (kept so a
    failed page can be retried)."""
    pending_question: str = ""
    """The parent's own question for the page being made ("" when they gave none)."""
    pending_source: PageSource = PageSource.AI
    """Whose words ``pending_input`` is: the child's idea (AI) or the parent's page (PARENT)."""
    last_error: str = ""
    child_id: int | None = None
    """The child this book is made with (None only for drafts older than child profiles)."""
    age_band: AgeBand = DEFAULT_AGE_BAND
    """The child's age band when the book was started; every page is written for it."""

    # -- transitions -------------------------------------------------------------------

    @classmethod
    def begin(
        cls,
        *,
        draft_id: str,
        owner_id: int,
        child_id: int | None = None,
        age_band: AgeBand = DEFAULT_AGE_BAND,
    ) -> BookDraft:
        return cls(draft_id=draft_id, owner_id=owner_id, child_id=child_id, age_band=AgeBand(age_band))

    def set_up(self, *, characters: list[Character], page_count: int, language: Language) -> None:
        if self.state is not BookState.INIT:
            raise IllegalMove(gettext_noop("This book has already been set up."))
        if not MIN_CHARACTERS <= len(characters) <= MAX_CHARACTERS:
            raise InvalidBook(
                gettext_noop("A book has between %(least)d and %(most)d characters."),
                least=MIN_CHARACTERS,
                most=MAX_CHARACTERS,
            )
        names = [character.name.casefold() for character in characters]
        if len(set(names)) != len(names):
            raise InvalidBook(gettext_noop("Two characters have the same name; give each one their own."))
        if not MIN_PAGES <= page_count <= MAX_PAGES:
            raise InvalidBook(
                gettext_noop("A book has between %(least)d and %(most)d pages."),
                least=MIN_PAGES,
                most=MAX_PAGES,
            )
        self.characters = list(characters)
        self.page_count = page_count
        self.language = Language(language)
        self.state = BookState.IN_PROGRESS

    def begin_page(self, *, page_number: int, child_input: str) -> str:
        """Move to ``generating`` for the next page; returns the cleaned child's input."""
        if self.state is BookState.GENERATING:
            raise AlreadyGenerating(gettext_noop("A page is being made right now; wait for it to finish."))
        self._check_next_page(page_number)
        cleaned = clean_child_input(child_input)
        self.state = BookState.GENERATING
        self.pending_input, self.pending_question = cleaned, ""
        self.pending_source = PageSource.AI
        self.last_error = ""
        return cleaned

    def begin_parent_page(self, *, page_number: int, text: str, question: str = "") -> str:
        """The parent writes the next page themselves; only its picture is still to be made."""
        if self.state is BookState.GENERATING:
            raise AlreadyGenerating(gettext_noop("A page is being made right now; wait for it to finish."))
        self._check_next_page(page_number)
        cleaned = clean_page_text(text)
        self.state = BookState.GENERATING
        self.pending_input, self.pending_question = cleaned, clean_question(question)
        self.pending_source = PageSource.PARENT
        self.last_error = ""
        return cleaned

    def complete_page(self, page: DraftPage) -> None:
        if self.state is not BookState.GENERATING:
            raise IllegalMove(gettext_noop("No page is being made right now."))
        if page.number != self.next_page_number:
            raise IllegalMove(
                gettext_noop("Page %(number)d is not the next page of this book."), number=page.number
            )
        self.pages.append(page)
        self.pending_input, self.pending_question = "", ""
        self.pending_source = PageSource.AI
        self.state = BookState.DONE if self.is_complete else BookState.IN_PROGRESS

    def add_new_words(self, *, page_number: int, new_words: str) -> None:
        """An optional section made again after its page was kept."""
        index = self._page_index(page_number)
        self.pages[index] = replace(self.pages[index], new_words=new_words.strip())

    def abandon_page(self, reason: str) -> None:
        """The page could not be made; the book goes back to how it was, input kept for a retry."""
        if self.state is BookState.GENERATING:
            self.state = BookState.IN_PROGRESS
        self.last_error = reason

    def edit_page(self, *, page_number: int, text: str, question: str | None = None) -> None:
        if self.state is BookState.GENERATING:
            raise AlreadyGenerating(gettext_noop("Wait for the page being made before editing."))
        if self.state is BookState.INIT:
            raise IllegalMove(gettext_noop("This book has no pages yet."))
        index = self._page_index(page_number)
        page = self.pages[index]
        new_question = page.question if question is None else clean_question(question)
        self.pages[index] = replace(
            page, text=clean_page_text(text), question=new_question, source=PageSource.PARENT
        )

    def finish(self, title: str) -> FinishedBook:
        if self.state is not BookState.DONE:
            remaining = self.page_count - len(self.pages)
            raise IllegalMove(
                gettext_noop(
                    "The book is not finished yet: %(remaining)d more page(s) to make before it gets a title."
                ),
                remaining=remaining,
            )
        return FinishedBook(
            title=clean_title(title),
            language=self.language,
            characters=tuple(self.characters),
            pages=tuple(self.pages),
        )

    # -- reading -------------------------------------------------------------------------

    @property
    def next_page_number(self) -> int:
        return len(self.pages) + 1

    @property
    def is_complete(self) -> bool:
        return self.page_count > 0 and len(self.pages) >= self.page_count

    @property
    def is_last_page_next(self) -> bool:
        return self.next_page_number == self.page_count

    @property
    def current_question(self) -> str:
        return self.pages[-1].question if self.pages else ""

    def page(self, page_number: int) -> DraftPage:
        return self.pages[self._page_index(page_number)]

    def _page_index(self, page_number: int) -> int:
        if not 1 <= page_number <= len(self.pages):
            raise IllegalMove(gettext_noop("This book has no page %(number)d yet."), number=page_number)
        return page_number - 1

    def _check_next_page(self, page_number: int) -> None:
        if self.state is BookState.INIT:
            raise IllegalMove(gettext_noop("Name the characters and the number of pages first."))
        if self.state is BookState.DONE:
            raise IllegalMove(gettext_noop("Every page is written; give the book a title to finish it."))
        if page_number != self.next_page_number:
            raise IllegalMove(
                gettext_noop(
                    "Page %(number)d can't be made now: the next page of this book is page %(next)d."
                ),
                number=page_number,
                next=self.next_page_number,
            )

    # -- storage form (JSON-friendly, never pickle) --------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BookDraft:
        return cls(
            draft_id=data["draft_id"],
            owner_id=int(data["owner_id"]),
            state=BookState(data["state"]),
            characters=[Character(**c) for c in data["characters"]],
            page_count=int(data["page_count"]),
            language=Language(data["language"]),
            pages=[DraftPage(**{**p, "source": PageSource(p["source"])}) for p in data["pages"]],
            pending_input=data.get("pending_input", ""),
            pending_question=data.get("pending_question", ""),
            pending_source=PageSource(data.get("pending_source") or _older_pending_source(data)),
            last_error=data.get("last_error", ""),
            child_id=int(data["child_id"]) if data.get("child_id") is not None else None,
            age_band=AgeBand(data.get("age_band") or DEFAULT_AGE_BAND),
        )


def _older_pending_source(data: dict[str, Any]) -> PageSource:
    """Whose words a draft saved before it kept their source holds, as well as can be told.

    A child's idea never comes with a question nor runs past ``MAX_CHILD_INPUT_LENGTH``; a short
    page the parent wrote without a question reads as a child's idea, as it always did then.
    """
    words, question = data.get("pending_input", ""), data.get("pending_question", "")
    return PageSource.PARENT if question or len(words) > MAX_CHILD_INPUT_LENGTH else PageSource.AI
