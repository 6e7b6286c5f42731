"""Reads of what making a book used, summed per page and per book."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import QuerySet, Sum

from books.models import Book
from usage.models import UsageRecord


@dataclass(frozen=True)
class Used:
    input_tokens: int = 0
    output_tokens: int = 0
    pictures: int = 0

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens

    def __bool__(self) -> bool:
        return bool(self.tokens or self.pictures)


@dataclass(frozen=True)
class BookUsage:
    """Totals of a book (or a book in progress) and of each of its pages."""

    total: Used = field(default_factory=Used)
    pages: dict[int, Used] = field(default_factory=dict)

    def page(self, number: int) -> Used:
        return self.pages.get(number, Used())


def _summed(records: QuerySet[UsageRecord]) -> BookUsage:
    per_page = (
        records.order_by()
        .values("page_number")
        .annotate(
            input_total=Sum("input_tokens"),
            output_total=Sum("output_tokens"),
            picture_total=Sum("pictures"),
        )
    )
    pages = {
        row["page_number"]: Used(
            input_tokens=row["input_total"] or 0,
            output_tokens=row["output_total"] or 0,
            pictures=row["picture_total"] or 0,
        )
        for row in per_page
    }
    total = Used(
        input_tokens=sum(p.input_tokens for p in pages.values()),
        output_tokens=sum(p.output_tokens for p in pages.values()),
        pictures=sum(p.pictures for p in pages.values()),
    )
    return BookUsage(total=total, pages=pages)


def draft_usage(*, user_id: int, draft_id: str) -> BookUsage:
    """What the user's book in progress has used so far, failed and stopped attempts included."""
    return _summed(UsageRecord.objects.filter(user_id=user_id, draft_id=draft_id))


def book_usage(book: Book) -> BookUsage:
    """What making a finished book used, every page and every attempt."""
    return _summed(UsageRecord.objects.filter(book=book))
