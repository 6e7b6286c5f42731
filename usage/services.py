"""Writes of the usage app: admitting a generation request, recording what a run used."""

from __future__ import annotations

from django.db import transaction

from books.models import Book
from usage import limits
from usage.limits import PageHold
from usage.meter import PageMeter
from usage.models import UsageRecord


def admit_generation(*, user_id: int, new_page: bool) -> PageHold | None:
    """Let a generation request through, or refuse it with a ``GenerationLimited`` (429).

    Every request counts against the rate; one that makes a page not yet in the book also
    holds a unit of today's quota (``limits.keep_page_unit`` / ``give_back_page_unit`` settle it).
    """
    limits.take_rate_unit(user_id)
    return limits.hold_page_unit(user_id) if new_page else None


def settle_page_run(
    *,
    user_id: int,
    draft_id: str,
    page_number: int,
    meter: PageMeter,
    hold: PageHold | None,
    page_kept: bool,
) -> None:
    """A run has ended: record what its sections used, and keep or give back its quota unit.

    A failed or stopped page gives its unit back (a family should not lose a page of the
    day to an outage), but what it used upstream is recorded all the same: it was spent.
    """
    record_usage(user_id=user_id, draft_id=draft_id, page_number=page_number, meter=meter)
    if page_kept:
        limits.keep_page_unit(hold)
    else:
        limits.give_back_page_unit(hold)


@transaction.atomic
def record_usage(*, user_id: int, draft_id: str, page_number: int, meter: PageMeter) -> list[UsageRecord]:
    """One row per section an adapter reported on (a parent's own words use nothing and leave none).

    Written while the run still holds the book's generation lock, and a book is only
    finished without that lock, so the rows are always there before ``attach_to_book``.
    """
    rows = [
        UsageRecord(
            user_id=user_id,
            draft_id=draft_id,
            page_number=page_number,
            section=section,
            adapter=reading.adapter,
            model=reading.model,
            input_tokens=reading.input_tokens,
            output_tokens=reading.output_tokens,
            pictures=reading.pictures,
        )
        for section, reading in meter.readings.items()
        if reading.reported
    ]
    return UsageRecord.objects.bulk_create(rows)


def attach_to_book(*, book: Book) -> int:
    """The draft became ``book``: its rows now belong to the book (called inside the finish transaction)."""
    return UsageRecord.objects.filter(
        draft_id=book.draft_id, user_id=book.owner_id, book__isnull=True
    ).update(book=book)


def forget_drafts(*, user_id: int, draft_ids: list[str]) -> int:
    """Delete what these drafts' runs used; today's quota, counted apart, is not given back."""
    deleted, _ = UsageRecord.objects.filter(user_id=user_id, draft_id__in=draft_ids).delete()
    return deleted
