"""Use cases: everything that changes a book goes through one of these functions.

Views parse input, call one of these and render; the rules themselves live in
``books.domain``. Errors are ``DomainError`` subclasses whose text is shown to people.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext, gettext_noop

from books import drafts, pictures, ports
from books.domain import (
    AlreadyGenerating,
    BookDraft,
    BookState,
    Character,
    DomainError,
    DraftPage,
    IllegalMove,
    InvalidBook,
    Language,
    PageSource,
    clean_child_input,
    clean_page_text,
    clean_question,
)
from books.drafts import GenerationLock
from books.models import Book, Page
from books.models import Character as CharacterRow
from books.ports import PageSoFar, Picture, QuestionWriter, StoryContext, StoryWriter
from families.selectors import own_child
from safety import services as safety
from safety.models import FlagSource
from streaming import live, runs
from streaming.live import LivePublisher, LiveSnapshot, RunState
from streaming.pipeline import EventSink, PageResult, PageWorkers, PictureKeeper, make_page
from streaming.sections import BY_NAME, SECTIONS, SectionStatus, sections_for, with_dependents
from usage import services as usage_services
from usage.limits import PageHold, give_back_page_unit
from usage.meter import PageMeter

log = logging.getLogger(__name__)


class PageFailed(DomainError):
    """The storyteller could not make the page; the draft is as it was before."""

    status = 502


# -- starting and changing a draft -------------------------------------------------------------


def start_book(
    *, user_id: int, child_id: int, characters: list[tuple[str, str]], page_count: int, language: str
) -> BookDraft:
    """A new draft, made with one of the parent's own children and written for their age band."""
    if drafts.current(user_id) is not None:
        raise IllegalMove(
            gettext_noop(
                "You already have a book in progress: finish it or put it away before starting another."
            )
        )
    child = own_child(parent_id=user_id, child_id=child_id)
    if child is None:
        raise InvalidBook(gettext_noop("Choose one of your own children to make this book with."))
    draft = BookDraft.begin(
        draft_id=uuid.uuid4().hex, owner_id=user_id, child_id=child.pk, age_band=child.band
    )
    draft.set_up(
        characters=[Character.create(name, description) for name, description in characters],
        page_count=page_count,
        language=Language(language),
    )
    safety.screen_input(
        user_id=user_id,
        child_id=child.pk,
        draft_id=draft.draft_id,
        source=FlagSource.CHARACTERS,
        text="\n".join(f"{c.name}: {c.description}" if c.description else c.name for c in draft.characters),
        language=draft.language,
    )
    # Deleting a child holds the family's lock while it collects the child's drafts: saving
    # under it too means no draft is kept for a child that has just been deleted.
    lock = GenerationLock(user_id)
    lock.acquire()
    try:
        if own_child(parent_id=user_id, child_id=child.pk) is None:
            raise InvalidBook(gettext_noop("Choose one of your own children to make this book with."))
        drafts.remember_for_child(child.pk, draft.draft_id)
        drafts.save(draft)
    finally:
        lock.release()
    return draft


def edit_page(*, user_id: int, draft_id: str, page_number: int, text: str, question: str | None) -> BookDraft:
    draft = drafts.load(user_id, draft_id)
    _refuse_while_generating(user_id)
    draft.edit_page(page_number=page_number, text=text, question=question)
    edited = draft.page(page_number)
    safety.screen_input(
        user_id=user_id,
        child_id=draft.child_id,
        draft_id=draft_id,
        source=FlagSource.PARENT_PAGE,
        text=_page_words(edited.text, edited.question),
        language=draft.language,
        page_number=page_number,
    )
    drafts.save(draft)
    return draft


def _page_words(text: str, question: str = "") -> str:
    return f"{text}\n\n{question}" if question else text


def discard_draft(*, user_id: int, draft_id: str) -> None:
    draft = drafts.load(user_id, draft_id)
    _refuse_while_generating(user_id)
    drafts.delete(draft)
    pictures.delete_quietly([page.picture for page in draft.pages if page.picture])


def _refuse_while_generating(user_id: int) -> None:
    if GenerationLock.is_held(user_id):
        raise AlreadyGenerating(gettext_noop("A page is being made right now; wait for it to finish."))


# -- making a page ---------------------------------------------------------------------------------
#
# A page is made by a run: a background task of the server process (``streaming.runs``)
# that streams every section into the live hub. ``start_*`` return once the run is under
# way (the page shows its tabs at once); ``make_next_page`` and ``write_page_yourself``
# wait for it, for callers that want the finished page.

Begin = Callable[[BookDraft], object]
Keep = Callable[[BookDraft, int, StoryContext, PageResult], BookDraft]


async def start_next_page(
    *, user_id: int, draft_id: str, page_number: int, child_input: str
) -> asyncio.Task[BookDraft]:
    """The child said what happens next: start writing, drawing and asking.

    The child's words are checked first; flagged words raise ``UnkindInput`` and nothing starts.
    """
    cleaned = clean_child_input(child_input)
    # Not touched: starting the page saves it.
    draft = await sync_to_async(drafts.load)(user_id, draft_id, touch=False)
    await safety.ascreen_input(
        user_id=user_id,
        child_id=draft.child_id,
        draft_id=draft_id,
        source=FlagSource.CHILD_IDEA,
        text=cleaned,
        language=draft.language,
        page_number=page_number,
    )
    return await _start_run(
        user_id=user_id,
        draft_id=draft_id,
        page_number=page_number,
        begin=lambda draft: draft.begin_page(page_number=page_number, child_input=child_input),
        keep=_keeper(PageSource.AI),
        source=PageSource.AI,
    )


async def start_own_page(
    *, user_id: int, draft_id: str, page_number: int, text: str, question: str = ""
) -> asyncio.Task[BookDraft]:
    """The parent's own words: their text (and question, if they give one); the picture is still drawn."""
    cleaned_text = clean_page_text(text)
    cleaned_question = clean_question(question)
    # Not touched: starting the page saves it.
    draft = await sync_to_async(drafts.load)(user_id, draft_id, touch=False)
    await safety.ascreen_input(
        user_id=user_id,
        child_id=draft.child_id,
        draft_id=draft_id,
        source=FlagSource.PARENT_PAGE,
        text=_page_words(cleaned_text, cleaned_question),
        language=draft.language,
        page_number=page_number,
    )
    return await _start_run(
        user_id=user_id,
        draft_id=draft_id,
        page_number=page_number,
        begin=lambda draft: draft.begin_parent_page(
            page_number=page_number, text=cleaned_text, question=cleaned_question
        ),
        keep=_keeper(PageSource.PARENT),
        source=PageSource.PARENT,
        story=ParentWords(cleaned_text),
        question=ParentQuestion(cleaned_question) if cleaned_question else None,
    )


async def make_next_page(*, user_id: int, draft_id: str, page_number: int, child_input: str) -> BookDraft:
    run = await start_next_page(
        user_id=user_id, draft_id=draft_id, page_number=page_number, child_input=child_input
    )
    return await run


async def write_page_yourself(
    *, user_id: int, draft_id: str, page_number: int, text: str, question: str = ""
) -> BookDraft:
    run = await start_own_page(
        user_id=user_id, draft_id=draft_id, page_number=page_number, text=text, question=question
    )
    return await run


async def retry_sections(*, user_id: int, draft_id: str, sections: set[str]) -> asyncio.Task[BookDraft]:
    """Make failed sections again (and what depends on them); completed ones are kept as they are."""
    snapshot = await live.hub().snapshot(draft_id)
    draft = await sync_to_async(drafts.load)(user_id, draft_id)
    if snapshot is None or snapshot.state is RunState.RUNNING:
        raise IllegalMove(gettext_noop("There is nothing to make again right now."))
    failed = {name for name, state in snapshot.sections.items() if state.status is SectionStatus.UNHEALTHY}
    if not sections or not sections <= failed:
        raise IllegalMove(gettext_noop("Only a part that could not be made can be made again."))
    page_number = snapshot.page_number
    only = with_dependents(sections, is_last_page=page_number == draft.page_count)
    earlier = _result_from(snapshot)
    if page_number <= len(draft.pages):
        if sections - {s.name for s in SECTIONS if not s.required}:
            raise IllegalMove(gettext_noop("Page %(number)d is already in your book."), number=page_number)
        return await _start_run(
            user_id=user_id,
            draft_id=draft_id,
            page_number=page_number,
            begin=lambda draft: draft.page(page_number),
            keep=_keep_new_words,
            source=PageSource(snapshot.source),
            only=only,
            earlier=earlier,
        )
    source = PageSource(snapshot.source)
    story: StoryWriter | None = None
    question: QuestionWriter | None = None
    if source is PageSource.PARENT:
        # From the words the draft kept, not the live story tab: a story that failed its
        # safety check before any sentence was shown left that tab empty. And handed back as
        # they are, as on the first try: the storyteller must not rewrite the parent's page.
        text, asked = draft.pending_input, draft.pending_question
        story, question = ParentWords(text), ParentQuestion(asked) if asked else None

        def begin(draft: BookDraft) -> object:
            return draft.begin_parent_page(page_number=page_number, text=text, question=asked)
    else:

        def begin(draft: BookDraft) -> object:
            return draft.begin_page(page_number=page_number, child_input=snapshot.child_input)

    return await _start_run(
        user_id=user_id,
        draft_id=draft_id,
        page_number=page_number,
        begin=begin,
        keep=_keeper(source),
        source=source,
        story=story,
        question=question,
        only=only,
        earlier=earlier,
    )


async def stop_page(*, user_id: int, draft_id: str) -> None:
    """Stop the page being made; the book goes back to how it was, the child's words kept."""
    await sync_to_async(drafts.load)(user_id, draft_id)
    if not await sync_to_async(GenerationLock.is_held)(user_id):
        raise IllegalMove(gettext_noop("No page is being made right now."))
    await runs.request_stop(draft_id, user_id=user_id)


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


async def _start_run(
    *,
    user_id: int,
    draft_id: str,
    page_number: int,
    begin: Begin,
    keep: Keep,
    source: PageSource,
    story: StoryWriter | None = None,
    question: QuestionWriter | None = None,
    only: set[str] | None = None,
    earlier: PageResult | None = None,
) -> asyncio.Task[BookDraft]:
    lock = GenerationLock(user_id)
    draft, hold = await sync_to_async(_begin_page)(user_id, draft_id, page_number, lock, begin)
    try:
        context = story_context(draft, page_number=page_number)
        live_hub = live.hub()
        previous = await live_hub.snapshot(draft_id)
        snapshot = LiveSnapshot.start(
            draft_id=draft_id,
            page_number=page_number,
            run_id=uuid.uuid4().hex,
            child_input=context.child_input if source is PageSource.AI else "",
            is_last_page=context.is_last_page,
            source=source.value,
            previous=previous if only is not None else None,
            rerun=only,
            seq=previous.seq if previous else 0,
        )
        publisher = LivePublisher(live_hub, snapshot)
        publisher.emit("", "run", status=RunState.RUNNING)
        await publisher.flush()  # the page shown after this request already has the run's tabs
        workers = PageWorkers(
            story=story or ports.story_writer(),
            question=question or ports.question_writer(),
            illustrator=ports.illustrator(),
            words=ports.word_explainer(),
            keep_picture=_picture_keeper(draft_id, page_number),
            **_moderation(user_id, draft, page_number),
        )
    except BaseException:
        await sync_to_async(_abandon_page)(
            user_id, draft_id, gettext("The page could not be started; try again.")
        )
        await sync_to_async(give_back_page_unit)(hold)
        await sync_to_async(lock.release)()
        raise
    work = _run_page(
        draft=draft,
        page_number=page_number,
        context=context,
        workers=workers,
        publisher=publisher,
        lock=lock,
        keep=keep,
        only=only,
        earlier=earlier,
        hold=hold,
    )
    return runs.launch(draft_id, work)


async def _run_page(
    *,
    draft: BookDraft,
    page_number: int,
    context: StoryContext,
    workers: PageWorkers,
    publisher: LivePublisher,
    lock: GenerationLock,
    keep: Keep,
    only: set[str] | None,
    earlier: PageResult | None,
    hold: PageHold | None,
) -> BookDraft:
    this_run = asyncio.current_task()
    assert this_run is not None
    heartbeat = asyncio.create_task(runs.keep_alive(lock, this_run))
    timeout = settings.LITTLEWRITER["GENERATION_TIMEOUT_SECONDS"]
    meter = PageMeter()
    settle = _usage_settler(draft, page_number, meter, hold)
    try:
        async with asyncio.timeout(timeout):
            result = await make_page(
                context, workers, _sink(publisher), only=only, earlier=earlier, meter=meter
            )
        failures = result.required_failures(sections_for(is_last_page=context.is_last_page))
        if failures:
            raise PageFailed(_failure_sentence(page_number, failures))
        # The page and its usage in one trip to the run's thread (each trip is 10–40 ms under
        # load, all of it before the family sees the page), the usage before the last frame:
        # the book the socket sends after it already shows the figures.
        kept = await sync_to_async(_keep_and_settle)(keep, settle, draft, page_number, context, result)
        publisher.emit("", "run", status=RunState.COMPLETE)
        return kept
    except BaseException as error:
        state, reason = _why_the_run_ended(error, page_number)
        await sync_to_async(_settle_and_abandon)(settle, draft, reason)
        for name, section in publisher.snapshot.sections.items():
            if section.status in (SectionStatus.NOT_STARTED, SectionStatus.STREAMING):
                publisher.emit(name, "status", status=SectionStatus.UNHEALTHY, reason=reason)
        publisher.emit("", "run", status=state, reason=reason)
        raise
    finally:
        await runs.cancel_quietly(heartbeat)
        try:
            # The last frame goes out before the lock does: a page view that finds no lock
            # must find a finished snapshot, or it would take the run for an interrupted one.
            await publisher.close()
        finally:
            # Even when the hub is unreachable: a held lock would block the book for
            # LOCK_SECONDS, and a page view then shows the run as interrupted, retryable.
            await sync_to_async(lock.release)()


def live_page(*, user_id: int, draft_id: str) -> tuple[BookDraft, LiveSnapshot | None]:
    """The draft and its live snapshot, with a run whose server went away marked as interrupted."""
    draft = drafts.load(user_id, draft_id)
    snapshot = live.read_snapshot(draft_id)
    if GenerationLock.is_held(user_id):
        return draft, snapshot
    if draft.state is not BookState.GENERATING and not (snapshot is not None and snapshot.is_active):
        return draft, snapshot
    # What was read may predate a run that has just ended (kept its page, released its lock):
    # take the lock and read again, so a finished page is never overwritten by a stale copy.
    lock = GenerationLock(user_id)
    try:
        lock.acquire()
    except AlreadyGenerating:
        return drafts.load(user_id, draft_id), live.read_snapshot(draft_id)  # a new run has begun
    try:
        draft = drafts.load(user_id, draft_id)
        snapshot = live.read_snapshot(draft_id)
        reason = gettext("Making this page was interrupted (the server restarted). Make it again.")
        if draft.state is BookState.GENERATING:
            draft.abandon_page(reason)
            drafts.save(draft)
        if snapshot is not None and snapshot.is_active:
            snapshot = live.mark_interrupted(snapshot, reason)
        return draft, snapshot
    finally:
        lock.release()


def _why_the_run_ended(error: BaseException, page_number: int) -> tuple[RunState, str]:
    if isinstance(error, asyncio.CancelledError):
        return RunState.STOPPED, gettext("Making page %(number)d was stopped. Your book is as it was.") % {
            "number": page_number
        }
    if isinstance(error, TimeoutError):
        return RunState.NEEDS_ATTENTION, gettext("Page %(number)d took too long to make; try again.") % {
            "number": page_number
        }
    if isinstance(error, DomainError):
        return RunState.NEEDS_ATTENTION, str(error)
    log.error("making page %s failed", page_number, exc_info=error)
    return RunState.NEEDS_ATTENTION, gettext("Page %(number)d could not be made; try again.") % {
        "number": page_number
    }


def _sink(publisher: LivePublisher) -> EventSink:
    async def on_event(section: str, what: str, payload: Any) -> None:
        if what == "delta":
            publisher.emit(section, "text", text=payload)
        elif what == "picture":
            publisher.emit(section, "picture", picture=payload)
        else:
            publisher.emit(section, "status", status=str(what), reason=payload or "")

    return on_event


def _moderation(user_id: int, draft: BookDraft, page_number: int) -> dict[str, Any]:
    """The pipeline's moderator and where its flags go: no generated text is shown unchecked."""
    moderator = ports.moderator()
    config = settings.LITTLEWRITER
    return {
        "moderator": moderator,
        "keep_flag": safety.flag_keeper(
            user_id=user_id,
            child_id=draft.child_id,
            draft_id=draft.draft_id,
            page_number=page_number,
            moderator_name=moderator.name or type(moderator).__name__,
        ),
        "moderation_attempts": int(config["MODERATION_ATTEMPTS"]),
        "moderation_backoff": float(config["MODERATION_BACKOFF_SECONDS"]),
    }


def _picture_keeper(draft_id: str, page_number: int) -> PictureKeeper:
    async def keep(picture: Picture) -> str:
        # Stored the moment it is drawn: a provider URL would expire, and a retry reuses it.
        return await sync_to_async(pictures.save_draft_picture)(
            draft_id=draft_id, page_number=page_number, picture=picture
        )

    return keep


def _result_from(snapshot: LiveSnapshot) -> PageResult:
    sections = snapshot.sections
    result = PageResult(
        text=sections["story"].text.strip() if "story" in sections else "",
        question=sections["question"].text.strip() if "question" in sections else "",
        new_words=sections["new_words"].text.strip() if "new_words" in sections else "",
        picture_name=sections["picture"].picture if "picture" in sections else "",
    )
    result.failures = {
        name: state.reason for name, state in sections.items() if state.status is not SectionStatus.COMPLETE
    }
    return result


def _begin_page(
    user_id: int, draft_id: str, page_number: int, lock: GenerationLock, begin: Begin
) -> tuple[BookDraft, PageHold | None]:
    # Every caller has loaded the draft already, so a 404 or 410 came before a 409 here.
    lock.acquire()
    hold: PageHold | None = None
    try:
        draft = drafts.load(user_id, draft_id, touch=False)  # again, now that no run can change it
        if draft.state is BookState.GENERATING:
            # We hold the lock, so the run that set this is gone (a restart, a crash).
            draft.abandon_page(gettext("The last page was interrupted; you can make it again."))
        new_page = page_number > len(draft.pages)
        begin(draft)
        # Limits after the book's own rules (an illegal move costs nothing) and before the
        # draft is saved: a refused request leaves the book exactly as it was.
        hold = usage_services.admit_generation(user_id=user_id, new_page=new_page)
        drafts.save(draft)
        return draft, hold
    except BaseException:
        give_back_page_unit(hold)
        lock.release()
        raise


def _usage_settler(
    draft: BookDraft, page_number: int, meter: PageMeter, hold: PageHold | None
) -> Callable[..., None]:
    """Records the run's usage and settles its quota unit, once, without failing the run (sync)."""
    settled = False

    def settle(*, page_kept: bool) -> None:
        nonlocal settled
        if settled:
            return
        settled = True
        try:
            usage_services.settle_page_run(
                user_id=draft.owner_id,
                draft_id=draft.draft_id,
                page_number=page_number,
                meter=meter,
                hold=hold,
                page_kept=page_kept,
            )
        except Exception:
            # A page the family made must not be lost to bookkeeping; the log says what was missed.
            log.exception("usage of page %s of draft %s was not recorded", page_number, draft.draft_id)

    return settle


def _keep_and_settle(
    keep: Keep,
    settle: Callable[..., None],
    draft: BookDraft,
    page_number: int,
    context: StoryContext,
    result: PageResult,
) -> BookDraft:
    kept = keep(draft, page_number, context, result)
    settle(page_kept=True)
    return kept


def _settle_and_abandon(settle: Callable[..., None], draft: BookDraft, reason: str) -> None:
    settle(page_kept=False)
    _abandon_page(draft.owner_id, draft.draft_id, reason)


def story_context(draft: BookDraft, *, page_number: int) -> StoryContext:
    earlier_pages = [p for p in draft.pages if p.number < page_number]
    child_input = draft.pending_input
    if page_number <= len(draft.pages):  # a kept page, getting an optional section again
        child_input = draft.page(page_number).child_input or draft.page(page_number).text
    return StoryContext(
        characters=tuple(draft.characters),
        language=draft.language,
        page_number=page_number,
        page_count=draft.page_count,
        pages_so_far=tuple(PageSoFar(number=p.number, text=p.text) for p in earlier_pages),
        child_input=child_input,
        book_key=draft.draft_id,
        age_band=draft.age_band,
    )


def _keeper(source: PageSource) -> Keep:
    def keep(draft: BookDraft, page_number: int, context: StoryContext, result: PageResult) -> BookDraft:
        page = DraftPage(
            number=page_number,
            text=result.text,
            question=result.question,
            picture=result.picture_name,
            child_input=context.child_input if source is PageSource.AI else "",
            source=source,
            new_words=result.new_words,
        )
        draft.complete_page(page)
        drafts.save(draft)
        return draft

    return keep


def _keep_new_words(
    draft: BookDraft, page_number: int, context: StoryContext, result: PageResult
) -> BookDraft:
    fresh = drafts.load(draft.owner_id, draft.draft_id)
    fresh.add_new_words(page_number=page_number, new_words=result.new_words)
    drafts.save(fresh)
    return fresh


def _abandon_page(user_id: int, draft_id: str, reason: str) -> None:
    try:
        draft = drafts.load(user_id, draft_id)
    except DomainError:
        return
    if draft.state is BookState.GENERATING:
        draft.abandon_page(reason)
        drafts.save(draft)


def _failure_sentence(page_number: int, failures: dict[str, str]) -> str:
    parts = "; ".join(
        gettext("the %(section)s: %(reason)s")
        % {"section": gettext(BY_NAME[section].label).lower(), "reason": reason.rstrip(".")}
        for section, reason in failures.items()
    )
    sentence = gettext("Page %(number)d could not be made (%(parts)s). Your book is as it was — try again.")
    return sentence % {"number": page_number, "parts": parts}


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
        safety.screen_input(
            user_id=user_id,
            child_id=draft.child_id,
            draft_id=draft.draft_id,
            source=FlagSource.TITLE,
            text=finished.title,
            language=draft.language,
        )
        already = _write_book(draft, finished_title=finished.title)
    # The flags raised while it was a draft now belong to the book, for its review.
    safety.attach_flags_to_book(book=already)
    drafts.delete(draft)
    pictures.delete_quietly([page.picture for page in draft.pages if page.picture])
    return already


def _write_book(draft: BookDraft, *, finished_title: str) -> Book:
    if draft.child_id is not None and own_child(parent_id=draft.owner_id, child_id=draft.child_id) is None:
        # The child's profile was deleted (with its drafts) while this request was on its way.
        raise IllegalMove(gettext_noop("The child this book was made with is no longer in your family."))
    copied: list[str] = []
    try:
        with transaction.atomic():
            book = Book.objects.create(
                owner_id=draft.owner_id,
                child_id=draft.child_id,
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
            usage_services.attach_to_book(book=book)
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
        new_words=page.new_words,
    )
