"""Content safety: what families type is read before it is used, and every flag is kept.

``screen_input`` (and ``ascreen_input`` from async code) asks the configured moderator,
records a flag and raises ``UnkindInput`` with a kind sentence when the text is held back,
or ``SafetyCheckDown`` when the moderator cannot answer even after a few tries: unchecked
words are never used. Generated text is checked by the page pipeline, which records its
flags through ``flag_keeper``.
"""

from __future__ import annotations

from asgiref.sync import async_to_sync, sync_to_async
from django.conf import settings
from django.db import transaction
from django.utils.translation import gettext

from books import ports
from books.domain import DomainError, Language
from books.models import Book
from books.ports import AdapterError, Concern, Verdict
from families.models import Child
from littlewriter.request_threads import WORKER_THREADS, WaitTimes
from safety.models import FlagSource, ModerationFlag
from streaming.pipeline import FlagKeeper


class InputHeldBack(DomainError):
    """Words a family typed were not used; the form shows why and keeps them."""


class UnkindInput(InputHeldBack):
    status = 422


class SafetyCheckDown(InputHeldBack):
    status = 503


def kind_sentence(source: FlagSource, verdict: Verdict) -> str:
    """What the family reads: never the category, never the words found."""
    if Concern.PERSONAL_DETAILS.value in verdict.categories:
        return gettext(
            "A book is no place for phone numbers, e-mail or home addresses — let's leave those out."
        )
    sentences = {
        FlagSource.CHILD_IDEA: gettext("Let's think of a kinder idea for this page."),
        FlagSource.PARENT_PAGE: gettext("Let's find kinder words for this page."),
        FlagSource.CHARACTERS: gettext("Let's think of kinder names and descriptions for the characters."),
        FlagSource.TITLE: gettext("Let's think of a kinder title for the book."),
    }
    return sentences.get(source, gettext("Let's try another idea."))


def _down_sentence() -> str:
    return gettext("We could not check these words just now, so nothing was made. Try again in a moment.")


# How long the moderator has been taking to read typed words, in this process.
_READING_TIMES = WaitTimes()


async def _verdict(text: str, language: Language) -> tuple[Verdict, str]:
    moderator = ports.moderator()
    config = settings.LITTLEWRITER
    try:
        # A request's thread only waits while the moderator reads: its place goes to the next
        # request if the reading takes a while and someone is waiting for one.
        verdict = await WORKER_THREADS.aside_while(
            moderator.check_patiently(
                text,
                language=language,
                attempts=int(config["MODERATION_ATTEMPTS"]),
                backoff=float(config["MODERATION_BACKOFF_SECONDS"]),
                typed_words=True,
            ),
            times=_READING_TIMES,
        )
    except AdapterError as error:
        raise SafetyCheckDown(_down_sentence()) from error
    return verdict, moderator.name or type(moderator).__name__


def screen_input(
    *,
    user_id: int,
    child_id: int | None,
    draft_id: str,
    source: FlagSource,
    text: str,
    language: Language,
    page_number: int | None = None,
) -> None:
    """Check typed words before they are used; raise ``InputHeldBack`` if they may not be.

    ``child_id`` is the child the draft is made with: a flag goes with the child's profile.
    """
    verdict, moderator_name = async_to_sync(_verdict)(text, language)
    _hold_back_if_flagged(
        user_id=user_id,
        child_id=child_id,
        draft_id=draft_id,
        source=source,
        text=text,
        page_number=page_number,
        verdict=verdict,
        moderator_name=moderator_name,
    )


async def ascreen_input(
    *,
    user_id: int,
    child_id: int | None,
    draft_id: str,
    source: FlagSource,
    text: str,
    language: Language,
    page_number: int | None = None,
) -> None:
    """``screen_input`` for async code."""
    verdict, moderator_name = await _verdict(text, language)
    if not verdict.flagged:
        return  # nothing to record: no trip to a database thread
    await sync_to_async(_hold_back_if_flagged)(
        user_id=user_id,
        child_id=child_id,
        draft_id=draft_id,
        source=source,
        text=text,
        page_number=page_number,
        verdict=verdict,
        moderator_name=moderator_name,
    )


def _hold_back_if_flagged(
    *,
    user_id: int,
    child_id: int | None,
    draft_id: str,
    source: FlagSource,
    text: str,
    page_number: int | None,
    verdict: Verdict,
    moderator_name: str,
) -> None:
    if not verdict.flagged:
        return
    record_flag(
        user_id=user_id,
        child_id=child_id,
        draft_id=draft_id,
        page_number=page_number,
        source=source,
        text=text,
        verdict=verdict,
        moderator_name=moderator_name,
    )
    raise UnkindInput(kind_sentence(source, verdict))


@transaction.atomic
def record_flag(
    *,
    user_id: int,
    child_id: int | None,
    draft_id: str,
    source: FlagSource | str,
    text: str,
    verdict: Verdict,
    moderator_name: str,
    page_number: int | None = None,
) -> ModerationFlag | None:
    """Keep what the moderator held back; nothing when the child was deleted meanwhile.

    A check can still be under way when the parent deletes the child: the row is locked
    here, so the flag is saved before that deletion (which takes it along) or not at all
    (the parent asked for everything of the child to go), never against a missing child.
    """
    if child_id is not None and not Child.objects.select_for_update().filter(pk=child_id).exists():
        return None
    return ModerationFlag.objects.create(
        user_id=user_id,
        child_id=child_id,
        draft_id=draft_id,
        page_number=page_number,
        source=FlagSource(source),
        text=text,
        categories=list(verdict.categories),
        reason=verdict.reason[:300],
        moderator=moderator_name[:100],
    )


def flag_keeper(
    *, user_id: int, child_id: int | None, draft_id: str, page_number: int, moderator_name: str
) -> FlagKeeper:
    """Records what the pipeline held back of a generated section, for the draft's child."""

    async def keep(section: str, text: str, verdict: Verdict) -> None:
        await sync_to_async(record_flag)(
            user_id=user_id,
            child_id=child_id,
            draft_id=draft_id,
            page_number=page_number,
            source=section,
            text=text,
            verdict=verdict,
            moderator_name=moderator_name,
        )

    return keep


@transaction.atomic
def attach_flags_to_book(*, book: Book) -> int:
    """Link the flags raised while the book was a draft to the finished book; safe to repeat."""
    return ModerationFlag.objects.filter(
        draft_id=book.draft_id, user_id=book.owner_id, book__isnull=True
    ).update(book=book)


def forget_drafts(*, user_id: int, draft_ids: list[str]) -> int:
    """Delete the flags raised on these drafts (a finished book's flags go with the book)."""
    deleted, _ = ModerationFlag.objects.filter(user_id=user_id, draft_id__in=draft_ids).delete()
    return deleted
