"""Picture storage: copies, the drafts/ lifecycle rule on S3, the local purge."""

from __future__ import annotations

import os
import time
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings as django_settings
from django.core.management import CommandError, call_command
from django.urls import reverse

from books import pictures
from books.ports import Picture
from tests.conftest import USING_S3
from tests.people import make_parent
from tests.reviewing import PNG_SIGNATURE, client_for, fetch_picture, finished_book

PNG = b"\x89PNG\r\n\x1a\n" + b"picture-bytes"


def test_a_draft_picture_is_stored_under_drafts_at_once() -> None:
    name = pictures.save_draft_picture(draft_id="abc", page_number=2, picture=Picture(PNG))
    assert name.startswith("drafts/abc/page-2-") and name.endswith(".png")
    assert pictures.read(name) == PNG


def test_a_redrawn_page_gets_a_new_name() -> None:
    first = pictures.save_draft_picture(draft_id="abc", page_number=1, picture=Picture(PNG))
    second = pictures.save_draft_picture(draft_id="abc", page_number=1, picture=Picture(PNG + b"2"))
    assert first != second
    assert pictures.read(first) == PNG


def test_copy_to_the_book_keeps_the_bytes_and_the_draft() -> None:
    source = pictures.save_draft_picture(draft_id="abc", page_number=1, picture=Picture(PNG))
    target = pictures.book_picture_name(book_id=42, page_number=1, draft_name=source)
    assert target == "books/42/page-1.png"
    assert pictures.copy(source, target) == target
    assert pictures.read(target) == PNG
    assert pictures.read(source) == PNG


def test_copy_over_an_earlier_attempt_replaces_it() -> None:
    source = pictures.save_draft_picture(draft_id="abc", page_number=1, picture=Picture(PNG))
    pictures.copy(source, "books/7/page-1.png")
    newer = pictures.save_draft_picture(draft_id="abc", page_number=1, picture=Picture(PNG + b"new"))
    assert pictures.copy(newer, "books/7/page-1.png") == "books/7/page-1.png"
    assert pictures.read("books/7/page-1.png") == PNG + b"new"


def test_delete_quietly_survives_missing_pictures() -> None:
    name = pictures.save_draft_picture(draft_id="abc", page_number=1, picture=Picture(PNG))
    pictures.delete_quietly([name, "drafts/abc/never-existed.png"])
    assert not pictures.storage().exists(name)


def test_draft_pictures_live_as_long_as_drafts_can(settings: Any) -> None:
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "DRAFT_TTL_SECONDS": 72 * 3600}
    assert pictures.draft_picture_days() == 3
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "DRAFT_TTL_SECONDS": 3600}
    assert pictures.draft_picture_days() == 1


@pytest.mark.skipif(not USING_S3, reason="the lifecycle rule exists only on the S3 configuration")
def test_lifecycle_rule_expires_drafts_and_keeps_other_rules(settings: Any) -> None:
    client = pictures.storage().connection.meta.client  # type: ignore[attr-defined]
    other = {
        "ID": "someone-elses",
        "Filter": {"Prefix": "logs/"},
        "Status": "Enabled",
        "Expiration": {"Days": 30},
    }
    client.put_bucket_lifecycle_configuration(
        Bucket=settings.S3_BUCKET, LifecycleConfiguration={"Rules": [other]}
    )
    out = StringIO()
    call_command("install_drafts_lifecycle", stdout=out)
    call_command("install_drafts_lifecycle", stdout=out)  # twice: still one rule of ours
    rules = client.get_bucket_lifecycle_configuration(Bucket=settings.S3_BUCKET)["Rules"]
    ours = [r for r in rules if r["ID"] == pictures.LIFECYCLE_RULE_ID]
    assert len(ours) == 1
    assert ours[0]["Filter"]["Prefix"] == "drafts/"
    assert ours[0]["Expiration"]["Days"] == pictures.draft_picture_days()
    assert any(r["ID"] == "someone-elses" for r in rules)
    assert "drafts/ expires after" in out.getvalue()


@pytest.mark.skipif(USING_S3, reason="on the S3 configuration pictures are in the bucket, not local")
def test_lifecycle_command_says_when_there_is_no_bucket() -> None:
    with pytest.raises(CommandError, match="No S3 bucket"):
        call_command("install_drafts_lifecycle")


@pytest.mark.skipif(not USING_S3, reason="S3 pictures are handed out as presigned URLs only on S3")
def test_s3_pictures_are_private_and_served_by_short_lived_urls() -> None:
    import urllib.error
    import urllib.request

    name = pictures.save_draft_picture(draft_id="abc", page_number=1, picture=Picture(PNG))
    url = pictures.signed_url(name)
    assert "X-Amz-Expires=" in url or "Expires=" in url
    with urllib.request.urlopen(url) as answer:
        assert answer.read() == PNG
    bare = url.split("?", 1)[0]
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(bare)


@pytest.mark.skipif(USING_S3, reason="the local purge is the embedded twin of the bucket rule")
def test_purge_removes_only_old_local_drafts(picture_store: str) -> None:
    old = pictures.save_draft_picture(draft_id="old", page_number=1, picture=Picture(PNG))
    fresh = pictures.save_draft_picture(draft_id="fresh", page_number=1, picture=Picture(PNG))
    kept_book = "books/1/page-1.png"
    pictures.copy(old, kept_book)
    two_days_ago = time.time() - 2 * 86400
    for name in (old, kept_book):
        os.utime(Path(picture_store) / name, (two_days_ago, two_days_ago))
    out = StringIO()
    call_command("purge_drafts", "--hours", "24", stdout=out)
    assert not pictures.storage().exists(old)
    assert not (Path(picture_store) / "drafts" / "old").exists()
    assert pictures.storage().exists(fresh)
    assert pictures.storage().exists(kept_book)
    assert "Removed 1 draft picture(s)." in out.getvalue()


@pytest.mark.django_db
@pytest.mark.skipif(USING_S3, reason="on S3 the bucket is private: only a signed URL opens a picture")
def test_a_kept_picture_is_not_served_at_any_media_url(picture_store: str) -> None:
    owner, stranger = make_parent("ada"), make_parent("ben")
    book = finished_book(owner)
    name = str(book.pages.get(number=1).picture.name)
    checked_url = reverse("books:book_picture", args=[book.pk, 1])
    assert fetch_picture(client_for(owner), checked_url).startswith(PNG_SIGNATURE)
    media_root = Path(django_settings.MEDIA_ROOT)
    guesses = [
        f"{django_settings.MEDIA_URL}{name}",
        f"/media/{name}",
        f"/static/{name}",
        f"/{name}",
        f"/{(media_root / name).as_posix().lstrip('/')}",
        f"/{(Path(picture_store) / name).as_posix().lstrip('/')}",
    ]
    if media_root.is_relative_to(django_settings.BASE_DIR):  # var/media/... inside the checkout
        guesses.append(f"/{(media_root / name).relative_to(django_settings.BASE_DIR).as_posix()}")
    for client in (client_for(owner), client_for(stranger), client_for(None)):
        for url in guesses:
            response = client.get(url)
            assert response.status_code == 404, url
            assert PNG_SIGNATURE not in response.content, url
