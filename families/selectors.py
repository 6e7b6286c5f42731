"""Reads of children, each limited to the asking parent's own family."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404

from books import drafts
from books.models import Book, Page
from families.models import Child


def children_of(user: Any) -> QuerySet[Child]:
    """The parent's children, oldest profile first, with how many finished books each has."""
    return Child.objects.filter(parent=user).annotate(book_total=Count("books")).order_by("created_at", "id")


def child_of(user: Any, child_id: int) -> Child:
    """One of the parent's own children; another family's child (or none) is a 404, not a 403."""
    return get_object_or_404(Child, pk=child_id, parent=user)


def own_child(*, parent_id: int, child_id: int) -> Child | None:
    return Child.objects.filter(pk=child_id, parent_id=parent_id).first()


@dataclass(frozen=True)
class Footprint:
    """What deleting a child takes with it, as the confirmation page says it."""

    books: int
    drafts: int
    pictures: int


def footprint_of(child: Child) -> Footprint:
    draft = drafts.current(child.parent_id)
    draft_pictures = 0
    has_draft = draft is not None and draft.child_id == child.pk
    if draft is not None and has_draft:
        draft_pictures = sum(1 for page in draft.pages if page.picture)
    book_pictures = Page.objects.filter(book__child=child).exclude(picture="").count()
    return Footprint(
        books=Book.objects.filter(child=child).count(),
        drafts=1 if has_draft else 0,
        pictures=book_pictures + draft_pictures,
    )
