"""Use cases: everything that changes a book goes through one of these functions.

Views parse input, call one of these and render; the rules themselves live in
``books.domain``. Errors are ``DomainError`` subclasses whose text is shown to people.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace

from asgiref.sync import sync_to_async
from django.db import transaction

from books import drafts, pictures, ports
from books.domain import (
    AlreadyGenerating,
    BookDraft,
    BookState,
    Character,
    DomainError,
    DraftPage,
    IllegalMove,
    Language,
    PageSource,
    clean_page_text,
    clean_question,
)
from books.drafts import GenerationLock
from books.models import Book, Page
from books.models import Character as CharacterRow
from books.ports import PageSoFar, QuestionWriter, StoryContext, StoryWriter
from streaming.pipeline import EventSink, PageResult, PageWorkers, make_page

log = logging.getLogger(__name__)


class PageFailed(DomainError):
    """The storyteller could not make the page; the draft is as it was before."""

    status = 502


# -- starting and changing a draft -------------------------------------------------------------


def start_book(
    *, user_id: int, characters: list[tuple[str, str]], page_count: int, language: str
) -> BookDraft:
    if drafts.current(user_id) is not None:
        raise IllegalMove(
            "You already have a book in progress: finish it or put it away before starting another."
        )
    draft = BookDraft.begin(draft_id=uuid.uuid4().hex, owner_id=user_id)
    draft.set_up(
        characters=[Character.create(name, description) for name, description in characters],
        page_count=page_count,
        language=Language(language),
    )
    drafts.save(draft)
    return draft


def edit_page(*, user_id: int, draft_id: str, page_number: int, text: str, question: str | None) -> BookDraft:
    draft = drafts.load(user_id, draft_id)
    _refuse_while_generating(user_id)
    draft.edit_page(page_number=page_number, text=text, question=question)
    drafts.save(draft)
    return draft


def discard_draft(*, user_id: int, draft_id: str) -> None:
    draft = drafts.load(user_id, draft_id)
    _refuse_while_generating(user_id)
    drafts.delete(draft)
    pictures.delete_quietly([page.picture for page in draft.pages if page.picture])


def _refuse_while_generating(user_id: int) -> None:
    if GenerationLock.is_held(user_id):
        raise AlreadyGenerating("A page is being made right now; wait for it to finish.")


# -- making a page ---------------------------------------------------------------------------------


async def make_next_page(
    *, user_id: int, draft_id: str, page_number: int, child_input: str, on_event: EventSink | None = None
) -> BookDraft:
    """The child said what happens next: write, draw and ask, then keep the page in the draft."""
    return await _make_page(
        user_id=user_id,
        draft_id=draft_id,
        page_number=page_number,
        begin=lambda draft: draft.begin_page(page_number=page_number, child_input=child_input),
        source=PageSource.AI,
        story=None,
        question=None,
        on_event=on_event,
    )


async def write_page_yourself(
    *,
    user_id: int,
    draft_id: str,
    page_number: int,
    text: str,
    question: str = "",
    on_event: EventSink | None = None,
) -> BookDraft:
    """The parent's own words: their text (and question, if they give one); the picture is still drawn."""
    cleaned_text = clean_page_text(text)
    cleaned_question = clean_question(question)
    return await _make_page(
        user_id=user_id,
        draft_id=draft_id,
        page_number=page_number,
        begin=lambda draft: draft.begin_parent_page(page_number=page_number, text=cleaned_text),
        source=PageSource.PARENT,
        story=ParentWords(cleaned_text),
        question=ParentQuestion(cleaned_question) if cleaned_question else None,
        on_event=on_event,
    )


class ParentWords(StoryWriter):
    """The story writer for a page the parent typed: it hands back their words as they are."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        yield self.text


class ParentQuestion(QuestionWriter):
    def __init__(self, question: str) -> None:
        self.question = question

    async def ask(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        yield self.question


async def _make_page(
    *,
    user_id: int,
    draft_id: str,
    page_number: int,
    begin: Callable[[BookDraft], object],
    source: PageSource,
    story: StoryWriter | None,
    question: QuestionWriter | None,
    on_event: EventSink | None,
) -> BookDraft:
    lock = GenerationLock(user_id)
    draft = await sync_to_async(_begin_page)(user_id, draft_id, lock, begin)
    try:
        context = story_context(draft, page_number=page_number)
        workers = PageWorkers(
            story=story or ports.story_writer(),
            question=question or ports.question_writer(),
            illustrator=ports.illustrator(),
        )
        try:
            result = await (
                make_page(context, workers, on_event) if on_event else make_page(context, workers)
            )
        finally:
            await workers.close()
        if not result.ok:
            raise PageFailed(_failure_sentence(page_number, result))
        return await sync_to_async(_keep_page)(draft, page_number, context, result, source)
    except BaseException as error:
        reason = str(error) if isinstance(error, DomainError) else "The page could not be made; try again."
        if not isinstance(error, DomainError):
            log.exception("making page %s of draft %s failed", page_number, draft_id)
        await sync_to_async(_abandon_page)(user_id, draft_id, reason)
        raise
    finally:
        await sync_to_async(lock.release)()


def _begin_page(
    user_id: int, draft_id: str, lock: GenerationLock, begin: Callable[[BookDraft], object]
) -> BookDraft:
    drafts.load(user_id, draft_id)  # 404 / 410 before anything else
    lock.acquire()
    try:
        draft = drafts.load(user_id, draft_id)
        if draft.state is BookState.GENERATING:
            # We hold the lock, so the run that set this is gone (a restart, a crash).
            draft.abandon_page("The last page was interrupted; you can make it again.")
        begin(draft)
        drafts.save(draft)
        return draft
    except BaseException:
        lock.release()
        raise


def story_context(draft: BookDraft, *, page_number: int) -> StoryContext:
    return StoryContext(
        characters=tuple(draft.characters),
        language=draft.language,
        page_number=page_number,
        page_count=draft.page_count,
        pages_so_far=tuple(PageSoFar(number=p.number, text=p.text) for p in draft.pages),
        child_input=draft.pending_input,
        book_key=draft.draft_id,
    )


def _keep_page(
    draft: BookDraft, page_number: int, context: StoryContext, result: PageResult, source: PageSource
) -> BookDraft:
    assert result.picture is not None
    picture = pictures.save_draft_picture(
        draft_id=draft.draft_id, page_number=page_number, picture=result.picture
    )
    page = DraftPage(
        number=page_number,
        text=result.text,
        question=result.question,
        picture=picture,
        child_input=context.child_input if source is PageSource.AI else "",
        source=source,
    )
    draft.complete_page(page)
    drafts.save(draft)
    return draft


def _abandon_page(user_id: int, draft_id: str, reason: str) -> None:
    try:
        draft = drafts.load(user_id, draft_id)
    except DomainError:
        return
    draft.abandon_page(reason)
    drafts.save(draft)


def _failure_sentence(page_number: int, result: PageResult) -> str:
    parts = "; ".join(f"the {section}: {reason.rstrip('.')}" for section, reason in result.failures.items())
    return f"Page {page_number} could not be made ({parts}). Your book is as it was — try again."


# -- finishing -----------------------------------------------------------------------------------------


def finish_book(*, user_id: int, draft_id: str, title: str) -> Book:
    """Keep the book for good: copy pictures to ``books/``, write every row at once, then drop the draft.

    A failure at any step leaves the draft as it was and retryable, and no half-saved book.
    """
    draft = drafts.load(user_id, draft_id)
    _refuse_while_generating(user_id)
    finished = draft.finish(title)
    already = Book.objects.filter(draft_id=draft.draft_id, owner_id=user_id).first()
    if already is None:
        already = _write_book(draft, finished_title=finished.title)
    drafts.delete(draft)
    pictures.delete_quietly([page.picture for page in draft.pages if page.picture])
    return already


def _write_book(draft: BookDraft, *, finished_title: str) -> Book:
    copied: list[str] = []
    try:
        with transaction.atomic():
            book = Book.objects.create(
                owner_id=draft.owner_id,
                title=finished_title,
                language=draft.language,
                draft_id=draft.draft_id,
            )
            CharacterRow.objects.bulk_create(
                CharacterRow(book=book, position=i, name=c.name, description=c.description)
                for i, c in enumerate(draft.characters, start=1)
            )
            rows = []
            for page in draft.pages:
                picture = ""
                if page.picture:
                    target = pictures.book_picture_name(
                        book_id=book.pk, page_number=page.number, draft_name=page.picture
                    )
                    picture = pictures.copy(page.picture, target)
                    copied.append(picture)
                rows.append(_page_row(book, replace(page, picture=picture)))
            Page.objects.bulk_create(rows)
    except BaseException:
        pictures.delete_quietly(copied)
        raise
    return book


def _page_row(book: Book, page: DraftPage) -> Page:
    return Page(
        book=book,
        number=page.number,
        text=page.text,
        question=page.question,
        picture=page.picture,
        child_input=page.child_input,
        source=page.source.value,
    )
