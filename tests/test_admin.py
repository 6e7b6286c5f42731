"""Django admin for books, pages and characters, as staff see it."""

from __future__ import annotations

from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.urls import reverse

from books import services
from books.models import Book
from tests.people import start_book_with_child

pytestmark = pytest.mark.django_db(transaction=True)


def finished_book(user: Any, title: str, child_inputs: list[str]) -> Book:
    draft = start_book_with_child(
        user,
        characters=[("Mina", "a girl with a red umbrella")],
        page_count=len(child_inputs),
        language="en",
    )
    for number, child_input in enumerate(child_inputs, start=1):
        async_to_sync(services.make_next_page)(
            user_id=user.pk, draft_id=draft.draft_id, page_number=number, child_input=child_input
        )
    return services.finish_book(user_id=user.pk, draft_id=draft.draft_id, title=title)


def test_book_changelist_lists_books_with_their_page_count(admin_client: Client, parent: Any) -> None:
    finished_book(parent, "The Blue Door", ["a blue door appears", "they go home"])
    response = admin_client.get(reverse("admin:books_book_changelist"))
    assert response.status_code == 200
    page = response.content.decode()
    assert "The Blue Door" in page
    assert "ada" in page
    assert '<td class="field-page_total">2</td>' in page


def test_book_change_page_shows_characters_and_page_thumbnails(admin_client: Client, parent: Any) -> None:
    book = finished_book(parent, "The Blue Door", ["a blue door appears", "they go home"])
    response = admin_client.get(reverse("admin:books_book_change", args=[book.pk]))
    assert response.status_code == 200
    page = response.content.decode()
    assert "a girl with a red umbrella" in page
    for number in (1, 2):
        thumbnail = reverse("books:book_picture", args=[book.pk, number])
        assert f'<img src="{thumbnail}"' in page
        # The thumbnail URL itself lets staff in (it checks permissions, it is not public).
        assert admin_client.get(thumbnail).status_code in (200, 302)


def test_book_search_finds_title_owner_and_page_text(
    admin_client: Client, parent: Any, other_parent: Any
) -> None:
    finished_book(parent, "The Blue Door", ["a blue door appears", "they go home"])
    finished_book(other_parent, "Moon Picnic", ["a picnic on the moon", "back to bed"])
    changelist = reverse("admin:books_book_changelist")

    def titles_for(query: str) -> set[str]:
        response = admin_client.get(changelist, {"q": query})
        assert response.status_code == 200
        return {t for t in ("The Blue Door", "Moon Picnic") if t in response.content.decode()}

    assert titles_for("Moon") == {"Moon Picnic"}
    assert titles_for("ben") == {"Moon Picnic"}
    page_text = Book.objects.get(title="The Blue Door").pages.get(number=1).text
    assert titles_for(page_text.split(",")[0]) >= {"The Blue Door"}


def test_page_admin_lists_thumbnails_and_searches_text(admin_client: Client, parent: Any) -> None:
    book = finished_book(parent, "The Blue Door", ["a blue door appears", "they go home"])
    response = admin_client.get(reverse("admin:books_page_changelist"), {"q": "Blue Door"})
    assert response.status_code == 200
    assert reverse("books:book_picture", args=[book.pk, 1]) in response.content.decode()
    page = book.pages.get(number=1)
    change = admin_client.get(reverse("admin:books_page_change", args=[page.pk]))
    assert change.status_code == 200
    assert reverse("books:book_picture", args=[book.pk, 1]) in change.content.decode()
    filtered = admin_client.get(reverse("admin:books_page_changelist"), {"source__exact": "ai"})
    assert filtered.status_code == 200


def test_character_admin_lists_characters(admin_client: Client, parent: Any) -> None:
    finished_book(parent, "The Blue Door", ["a blue door appears", "they go home"])
    response = admin_client.get(reverse("admin:books_character_changelist"), {"q": "Mina"})
    assert response.status_code == 200
    assert "a girl with a red umbrella" in response.content.decode()
