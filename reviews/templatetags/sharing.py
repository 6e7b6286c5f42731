"""Sharing shown on the family's own pages (the reader's cover, the shelf) without touching their views."""

from __future__ import annotations

from typing import Any

from django import template

from books.models import Book
from reviews import selectors
from reviews.models import SharingState

register = template.Library()


@register.inclusion_tag("reviews/sharing_panel.html", takes_context=True)
def sharing_panel(context: template.Context, book: Book) -> dict[str, Any]:
    """The book's sharing state and the way to share it, for its own family only."""
    user = context.get("user")
    if user is None or book.owner_id != user.pk:
        return {"show": False}
    return {"show": True, "book": book, "sharing": selectors.sharing_of(book)}


@register.simple_tag
def sharing_states(books: Any) -> dict[int, SharingState]:
    return selectors.sharing_states(books)


@register.inclusion_tag("reviews/sharing_badge.html")
def sharing_badge(book: Book, states: dict[int, SharingState]) -> dict[str, Any]:
    return {"book": book, "state": states.get(book.pk, SharingState.PRIVATE)}
