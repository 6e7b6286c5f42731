"""Books and people for the review and sharing tests: finished books with real pictures in storage."""

from __future__ import annotations

import io
import urllib.request
import uuid
from typing import Any

from django.contrib.auth.models import Permission
from django.core.files.base import ContentFile
from django.test import Client
from PIL import Image

from books import pictures
from books.models import Book, Character, Page
from reviews import services
from tests.conftest import USING_S3
from tests.people import make_parent

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def png(colour: str = "orange") -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (24, 24), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def finished_book(owner: Any, title: str = "Mina and the Blue Door", page_count: int = 2) -> Book:
    """A book as finishing leaves it: characters, pages (the last one written by the parent), pictures."""
    book = Book.objects.create(owner=owner, title=title, language="en", draft_id=uuid.uuid4().hex)
    Character.objects.create(book=book, position=1, name="Mina", description="a girl with a red umbrella")
    for number in range(1, page_count + 1):
        target = f"{pictures.BOOKS_PREFIX}{book.pk}/page-{number}.png"
        name = pictures.storage().save(target, ContentFile(png()))
        by_parent = number == page_count
        Page.objects.create(
            book=book,
            number=number,
            text=f"Page {number} of {title}: Mina opens the blue door.",
            question="" if number == page_count else "What is behind the door?",
            picture=name,
            child_input="" if by_parent else f"idea number {number}",
            source="parent" if by_parent else "ai",
        )
    return book


def make_reviewer(username: str = "rita") -> Any:
    user = make_parent(username)
    services.make_reviewer(user=user)
    return user


def make_staff(username: str = "sam", *permissions: str) -> Any:
    """Staff, with only the named permissions ("app.codename"): never the reviewer one unless named."""
    user: Any = make_parent(username)
    user.is_staff = True
    user.save()
    for dotted in permissions:
        app_label, codename = dotted.split(".")
        permission = Permission.objects.get(content_type__app_label=app_label, codename=codename)
        user.user_permissions.add(permission)
    return user


def client_for(user: Any | None) -> Client:
    client = Client()
    if user is not None:
        client.force_login(user)
    return client


def fetch_picture(client: Client, url: str) -> bytes:
    """The picture's bytes as a browser gets them: streamed here, or from S3 through a signed URL."""
    response: Any = client.get(url)
    if USING_S3:
        assert response.status_code == 302, response.status_code
        assert "Signature" in response["Location"] or "X-Amz-Signature" in response["Location"]
        with urllib.request.urlopen(response["Location"], timeout=10) as remote:
            data: bytes = remote.read()
        return data
    assert response.status_code == 200, response.status_code
    data = b"".join(response.streaming_content)
    response.close()
    return data
