"""Reads for review and sharing, each limited to what the asking person may see.

A family sees its own books' sharing; a reviewer sees books that were submitted (never a
private one); anyone holding a live share link sees that one approved book, read-only.
Everything else is a 404, which says nothing about whether a book exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404
from django.shortcuts import get_object_or_404

from books.models import Book, Page
from reviews.models import BookReview, Decision, ShareLink, SharingState
from reviews.services import token_digest

RECENT_DECISIONS = 20


@dataclass(frozen=True)
class Sharing:
    """What the family sees about sharing one of its books."""

    state: SharingState
    parent_note: str
    last_decision: Decision | None
    decisions: list[Decision]
    active_link: ShareLink | None

    @property
    def label(self) -> str:
        return str(self.state.label)

    @property
    def can_submit(self) -> bool:
        return self.state in (SharingState.PRIVATE, SharingState.SENT_BACK)

    @property
    def can_share(self) -> bool:
        return self.state == SharingState.APPROVED


def _whole_book() -> QuerySet[Book]:
    return Book.objects.select_related("owner").prefetch_related(
        "characters", Prefetch("pages", queryset=Page.objects.order_by("number"))
    )


# -- the family ----------------------------------------------------------------------------------


def own_book(user: Any, book_id: int) -> Book:
    return get_object_or_404(Book.objects.select_related("owner"), pk=book_id, owner=user)


def sharing_of(book: Book) -> Sharing:
    review = BookReview.objects.filter(book=book).first()
    decisions = list(review.decisions.select_related("reviewer")) if review else []
    return Sharing(
        state=SharingState(review.state) if review else SharingState.PRIVATE,
        parent_note=review.parent_note if review else "",
        last_decision=decisions[0] if decisions else None,
        decisions=decisions,
        active_link=ShareLink.objects.filter(book=book, revoked_at__isnull=True).first(),
    )


def sharing_states(books: Any) -> dict[int, SharingState]:
    """The sharing state of each of these books in one query (a shelf shows them all)."""
    ids = [book.pk for book in books]
    found = dict(BookReview.objects.filter(book_id__in=ids).values_list("book_id", "state"))
    return {book_id: SharingState(found.get(book_id, SharingState.PRIVATE)) for book_id in ids}


# -- reviewers (callers check the permission first) ---------------------------------------------


def review_queue() -> QuerySet[BookReview]:
    """Books waiting for a reviewer, the longest waiting first, with what a reviewer weighs first."""
    return (
        BookReview.objects.filter(state=SharingState.SUBMITTED)
        .select_related("book", "book__owner")
        .annotate(
            page_total=Count("book__pages", distinct=True),
            child_inputs=Count("book__pages", filter=~Q(book__pages__child_input=""), distinct=True),
        )
        .order_by("submitted_at", "id")
    )


def recent_decisions(limit: int = RECENT_DECISIONS) -> list[Decision]:
    return list(
        Decision.objects.select_related("review__book", "review__book__owner", "reviewer").order_by(
            "-decided_at", "-id"
        )[:limit]
    )


def book_for_review(book_id: int) -> Book:
    """A book that was submitted at least once; a private book stays with its family (404)."""
    return get_object_or_404(
        _whole_book().exclude(review__state=SharingState.PRIVATE), pk=book_id, review__isnull=False
    )


def review_of(book: Book) -> BookReview:
    return BookReview.objects.prefetch_related(
        Prefetch("decisions", queryset=Decision.objects.select_related("reviewer"))
    ).get(book=book)


def review_picture_name(book_id: int, page_number: int) -> str:
    pages = Page.objects.filter(book_id=book_id, number=page_number, book__review__isnull=False).exclude(
        picture=""
    )
    page = get_object_or_404(pages.exclude(book__review__state=SharingState.PRIVATE))
    return str(page.picture.name)


def moderation_flags(book: Book) -> list[Any]:
    """The moderation flags recorded for this book (and its draft), oldest first, for the reviewer."""
    from safety.selectors import flags_for_book

    return list(flags_for_book(book))


# -- anyone holding a share link -----------------------------------------------------------------


def shared_book(token: str) -> Book:
    """The book behind a live link to an approved book; a revoked, unknown or guessed token is a 404."""
    link = _live_link(token)
    return _whole_book().get(pk=link.book_id)


def shared_picture_name(token: str, page_number: int) -> str:
    link = _live_link(token)
    page = get_object_or_404(Page.objects.exclude(picture=""), book_id=link.book_id, number=page_number)
    return str(page.picture.name)


def _live_link(token: str) -> ShareLink:
    # The approval is checked on every visit too, so a withdrawn book closes even a link
    # that somehow escaped being revoked.
    link = (
        ShareLink.objects.filter(
            token_hash=token_digest(token),
            revoked_at__isnull=True,
            book__review__state=SharingState.APPROVED,
        )
        .only("id", "book_id")
        .first()
    )
    if link is None:
        raise Http404("There is no shared book at this address.")
    return link
