"""Reads of moderation flags, for the staff who review books."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from books.models import Book
from safety.models import ModerationFlag


def flags_for_draft(draft_id: str) -> QuerySet[ModerationFlag]:
    """Every flag raised while the draft was made, oldest first."""
    return (
        ModerationFlag.objects.filter(draft_id=draft_id).select_related("user").order_by("created_at", "id")
    )


def flags_for_book(book: Book) -> QuerySet[ModerationFlag]:
    """The book's flags, oldest first, also those of its draft not yet linked to it."""
    linked = Q(book=book) | Q(book__isnull=True, draft_id=book.draft_id, user_id=book.owner_id)
    return ModerationFlag.objects.filter(linked).select_related("user").order_by("created_at", "id")
