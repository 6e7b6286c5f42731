"""A finished book as a PDF: a title page, one sheet per page with its picture, Korean included."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from asgiref.sync import async_to_sync
from django.test import Client
from django.urls import reverse
from pypdf import PdfReader

from books import services
from books.models import Book
from tests.people import start_book_with_child

pytestmark = pytest.mark.django_db(transaction=True)

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"


def finished_book(
    user: Any, *, title: str, language: str, characters: list[tuple[str, str]], inputs: list[str]
) -> Book:
    draft = start_book_with_child(user, characters=characters, page_count=len(inputs), language=language)
    for number, child_input in enumerate(inputs, start=1):
        async_to_sync(services.make_next_page)(
            user_id=user.pk, draft_id=draft.draft_id, page_number=number, child_input=child_input
        )
    return services.finish_book(user_id=user.pk, draft_id=draft.draft_id, title=title)


def pdf_of(response: Any) -> PdfReader:
    return PdfReader(io.BytesIO(response.content))


def squashed(text: str) -> str:
    """Text without spaces or line breaks: a PDF's lines wrap where the page's words do not."""
    return "".join(text.split())


def images_on(page: Any) -> int:
    return len(page.images)


def test_an_english_book_downloads_with_a_title_page_and_a_sheet_per_page(
    parent_client: Client, parent: Any
) -> None:
    book = finished_book(
        parent,
        title="Mina and the Blue Door",
        language="en",
        characters=[("Mina", "a girl with a red umbrella"), ("Bori", "a sleepy orange cat")],
        inputs=["a blue door appears", "they open it", "everyone goes home"],
    )
    response = parent_client.get(reverse("books:pdf", args=[book.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == 'attachment; filename="mina-and-the-blue-door.pdf"'
    document = pdf_of(response)
    assert len(document.pages) == 1 + 3
    cover = squashed(document.pages[0].extract_text())
    assert squashed("Mina and the Blue Door") in cover
    assert squashed("With Mina and Bori") in cover
    for page, sheet in zip(book.pages.order_by("number"), document.pages[1:], strict=True):
        text = squashed(sheet.extract_text())
        assert squashed(page.text) in text
        assert f"Page{page.number}" in text
        if page.question:
            assert squashed(page.question) in text
        assert images_on(sheet) == 1  # the page's picture, from storage


def test_a_korean_book_keeps_its_hangul(parent_client: Client, parent: Any) -> None:
    book = finished_book(
        parent,
        title="미나와 파란 문",
        language="ko",
        characters=[("미나", "빨간 우산을 든 여자아이"), ("보리", "졸린 고양이")],
        inputs=["파란 문이 나타났어요", "모두 집으로 가요"],
    )
    response = parent_client.get(reverse("books:pdf", args=[book.pk]))
    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    # A non-ASCII name travels RFC 6266 style, so browsers save it as the title.
    assert response["Content-Disposition"] == (
        "attachment; filename*=utf-8''%EB%AF%B8%EB%82%98%EC%99%80-%ED%8C%8C%EB%9E%80-%EB%AC%B8.pdf"
    )
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "korean-book.pdf").write_bytes(response.content)  # to look at, not to compare
    document = pdf_of(response)
    assert len(document.pages) == 1 + 2
    cover = squashed(document.pages[0].extract_text())
    assert squashed("미나와 파란 문") in cover
    assert "함께하는친구" in cover  # the title page speaks the book's language
    for page, sheet in zip(book.pages.order_by("number"), document.pages[1:], strict=True):
        assert any("\uac00" <= char <= "\ud7a3" for char in page.text)  # the story really is Korean
        text = squashed(sheet.extract_text())
        assert squashed(page.text) in text
        assert f"{page.number}쪽" in text


def test_a_long_page_still_fits_one_sheet(parent_client: Client, parent: Any) -> None:
    book = finished_book(parent, title="Long", language="en", characters=[("Mina", "")], inputs=["a", "b"])
    long_text = " ".join(["The sleepy orange cat walked all the way around the village once more."] * 40)
    book.pages.filter(number=1).update(text=long_text[:3000])
    document = pdf_of(parent_client.get(reverse("books:pdf", args=[book.pk])))
    assert len(document.pages) == 3
    assert squashed(long_text[:3000]) in squashed(document.pages[1].extract_text())


def test_another_familys_book_is_not_found(other_client: Client, parent: Any) -> None:
    book = finished_book(parent, title="Ours", language="en", characters=[("Mina", "")], inputs=["a", "b"])
    assert other_client.get(reverse("books:pdf", args=[book.pk])).status_code == 404
    assert other_client.get(reverse("books:pdf", args=[book.pk + 1000])).status_code == 404


def test_the_pdf_needs_a_login(client: Client, parent: Any) -> None:
    book = finished_book(parent, title="Ours", language="en", characters=[("Mina", "")], inputs=["a", "b"])
    response = client.get(reverse("books:pdf", args=[book.pk]))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_a_missing_font_says_so_instead_of_failing(parent_client: Client, parent: Any, settings: Any) -> None:
    book = finished_book(parent, title="Ours", language="en", characters=[("Mina", "")], inputs=["a", "b"])
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "PDF_FONT": "/nonexistent/font.ttf"}
    response = parent_client.get(reverse("books:pdf", args=[book.pk]))
    assert response.status_code == 503
    assert "a font is missing" in response.content.decode()


def test_the_reader_offers_the_download(parent_client: Client, parent: Any) -> None:
    book = finished_book(parent, title="Ours", language="en", characters=[("Mina", "")], inputs=["a", "b"])
    page = parent_client.get(reverse("books:read", args=[book.pk])).content.decode()
    assert f'href="{reverse("books:pdf", args=[book.pk])}"' in page
