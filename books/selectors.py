"""Reads of finished books, each already limited to what the asking user may see."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, Prefetch, QuerySet
from django.shortcuts import get_object_or_404

from books.models import Book, Page


def books_of(user: Any) -> QuerySet[Book]:
    """The user's own finished books, newest first, with what the shelf shows (characters, page count)."""
    return (
        Book.objects.filter(owner=user)
        .select_related("child")
        .annotate(page_total=Count("pages", distinct=True))
        .prefetch_related("characters")
        .order_by("-created_at", "-id")
    )


def book_for_reader(user: Any, book_id: int) -> Book:
    """A book its owner may read (and an admin allowed to view books); anyone else gets a 404, not a 403.

    A 404 says nothing about whether the book exists, so ids of other families' books leak nothing.
    Being staff is not enough: reviewers read submitted books on their own pages (``reviews``).
    """
    books = Book.objects.select_related("owner", "child").prefetch_related(
        "characters", Prefetch("pages", queryset=Page.objects.order_by("number"))
    )
    if not may_see_every_book(user):
        books = books.filter(owner=user)
    return get_object_or_404(books, pk=book_id)


def own_book(user: Any, book_id: int) -> Book:
    """A book of the user's own family (no staff exception: downloads are for the family); else a 404."""
    books = Book.objects.prefetch_related(
        "characters", Prefetch("pages", queryset=Page.objects.order_by("number"))
    )
    return get_object_or_404(books, pk=book_id, owner=user)


def book_picture_name(user: Any, book_id: int, page_number: int) -> str:
    """The storage name of a page's picture, if the user may see the book; else a 404."""
    pages = Page.objects.filter(book_id=book_id, number=page_number).exclude(picture="")
    if not may_see_every_book(user):
        pages = pages.filter(book__owner=user)
    page = get_object_or_404(pages)
    return str(page.picture.name)


def may_see_every_book(user: Any) -> bool:
    """Admins holding the "view book" permission (admin's thumbnails come through the picture view)."""
    return bool(user.has_perm("books.view_book"))
