"""Pictures in storage: ``drafts/<draft id>/`` while a book is made, ``books/<book id>/`` once kept.

The default storage is local media, or a private S3 bucket (django-storages) when one is
configured. Provider image URLs expire, so pictures are stored the moment they are made.
"""

from __future__ import annotations

import logging
import math
import secrets
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage, Storage, default_storage

from books.ports import Picture

log = logging.getLogger(__name__)

DRAFTS_PREFIX = "drafts/"
BOOKS_PREFIX = "books/"
LIFECYCLE_RULE_ID = "littlewriter-expire-drafts"


def storage() -> Storage:
    return default_storage


def is_s3() -> bool:
    return bool(settings.S3_BUCKET)


def save_draft_picture(*, draft_id: str, page_number: int, picture: Picture) -> str:
    # A fresh token per picture: a redrawn page never shows the old picture from a cache.
    name = f"{DRAFTS_PREFIX}{draft_id}/page-{page_number}-{secrets.token_hex(4)}.{picture.extension}"
    return storage().save(name, ContentFile(picture.data))


def book_picture_name(*, book_id: int, page_number: int, draft_name: str) -> str:
    extension = Path(draft_name).suffix or ".png"
    return f"{BOOKS_PREFIX}{book_id}/page-{page_number}{extension}"


def copy(source: str, target: str) -> str:
    """Copy a stored picture; on S3 the copy happens inside the bucket, bytes never pass through us."""
    store = storage()
    if is_s3():
        from storages.backends.s3 import S3Storage

        assert isinstance(store, S3Storage)
        bucket = store.bucket
        bucket.Object(store._normalize_name(target)).copy_from(
            CopySource={"Bucket": bucket.name, "Key": store._normalize_name(source)}
        )
        return target
    with store.open(source, "rb") as handle:
        data = handle.read()
    if store.exists(target):
        store.delete(target)
    return store.save(target, ContentFile(data))


def delete_quietly(names: list[str]) -> None:
    """Remove pictures no one will show again; what is missed is purged by the daily rule."""
    for name in names:
        try:
            storage().delete(name)
        except Exception:  # cleanup must never undo a finished book
            log.warning("could not delete picture %s; the daily purge will", name, exc_info=True)


def draft_folder(draft_id: str) -> str:
    return f"{DRAFTS_PREFIX}{draft_id}"


def book_folder(book_id: int) -> str:
    return f"{BOOKS_PREFIX}{book_id}"


def names_under(folder: str) -> list[str]:
    """Every stored picture under a folder (``books/7``, ``drafts/<id>``), at any depth."""
    store = storage()
    folder = folder.rstrip("/")
    try:
        subfolders, files = store.listdir(folder)
    except FileNotFoundError:
        return []
    names = [f"{folder}/{name}" for name in files]
    for subfolder in subfolders:
        names += names_under(f"{folder}/{subfolder}")
    return names


def delete_folder(folder: str) -> int:
    """Delete every picture under a folder (and, locally, the emptied folders); returns how many."""
    names = names_under(folder)
    store = storage()
    for name in names:
        store.delete(name)
    if isinstance(store, FileSystemStorage):
        root = Path(store.path(folder.rstrip("/")))
        if root.is_dir():
            for path in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
                path.rmdir()
            root.rmdir()
    return len(names)


def read(name: str) -> bytes:
    with storage().open(name, "rb") as handle:
        data: bytes = handle.read()
    return data


def signed_url(name: str) -> str:
    """A short-lived presigned URL (S3 only; local pictures are streamed by the view)."""
    return storage().url(name)


def draft_picture_days() -> int:
    """How long draft pictures are kept: a day, or longer when drafts live longer.

    A picture older than its draft's TTL belongs to no draft any more; one younger may
    still be shown, so the purge never undercuts the TTL.
    """
    ttl_seconds: int = settings.LITTLEWRITER["DRAFT_TTL_SECONDS"]
    return max(1, math.ceil(ttl_seconds / 86400))


def install_drafts_lifecycle_rule() -> dict[str, Any]:
    """Make the bucket expire ``drafts/`` after ``draft_picture_days()``, keeping its other rules."""
    from botocore.exceptions import ClientError
    from storages.backends.s3 import S3Storage

    store = storage()
    if not isinstance(store, S3Storage):
        raise RuntimeError("No S3 bucket is configured (set S3_BUCKET); nothing to install.")
    client = store.connection.meta.client
    try:
        rules = client.get_bucket_lifecycle_configuration(Bucket=settings.S3_BUCKET)["Rules"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "NoSuchLifecycleConfiguration":
            raise
        rules = []
    rule: dict[str, Any] = {
        "ID": LIFECYCLE_RULE_ID,
        "Filter": {"Prefix": DRAFTS_PREFIX},
        "Status": "Enabled",
        "Expiration": {"Days": draft_picture_days()},
        "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": 1},
    }
    rules = [r for r in rules if r.get("ID") != LIFECYCLE_RULE_ID] + [rule]
    client.put_bucket_lifecycle_configuration(
        Bucket=settings.S3_BUCKET, LifecycleConfiguration={"Rules": rules}
    )
    return rule


def purge_local_drafts(*, older_than_seconds: float | None = None, now: float | None = None) -> list[str]:
    """The embedded twin of the bucket rule: delete local draft pictures past their age."""
    if older_than_seconds is None:
        older_than_seconds = draft_picture_days() * 86400.0
    store = storage()
    if not isinstance(store, FileSystemStorage):
        raise RuntimeError("Draft pictures are in S3; the bucket's lifecycle rule purges them.")
    root = Path(store.location) / DRAFTS_PREFIX
    if not root.exists():
        return []
    cutoff = (time.time() if now is None else now) - older_than_seconds
    removed = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.stat().st_mtime < cutoff:
            path.unlink()
            removed.append(path.relative_to(store.location).as_posix())
    for folder in sorted((p for p in root.rglob("*") if p.is_dir()), reverse=True):
        if not any(folder.iterdir()):
            folder.rmdir()
    return removed
