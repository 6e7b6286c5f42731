"""Use cases for a family's children: add, change, and delete with everything that is theirs."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from django.db import transaction

from books import drafts, pictures
from books.domain import AgeBand, DomainError, gettext_noop
from books.drafts import GenerationLock
from books.models import Book
from families.models import Child
from families.selectors import Footprint, footprint_of
from safety import services as safety
from streaming import live, runs
from usage import services as usage_services

log = logging.getLogger(__name__)


class ChildNotFound(DomainError):
    status = 404


def _own_child(parent_id: int, child_id: int) -> Child:
    child = Child.objects.filter(pk=child_id, parent_id=parent_id).first()
    if child is None:
        raise ChildNotFound(gettext_noop("There is no such child in your family."))
    return child


@transaction.atomic
def add_child(*, parent_id: int, nickname: str, age_band: str) -> Child:
    child = Child(parent_id=parent_id, nickname=nickname.strip(), age_band=AgeBand(age_band).value)
    child.full_clean()
    child.save()
    return child


@transaction.atomic
def change_child(*, parent_id: int, child_id: int, nickname: str, age_band: str) -> Child:
    """A new nickname or age band; a book in progress keeps the band it was started with."""
    child = _own_child(parent_id, child_id)
    child.nickname, child.age_band = nickname.strip(), AgeBand(age_band).value
    child.full_clean()
    child.save(update_fields=["nickname", "age_band"])
    return child


@dataclass(frozen=True)
class _Stored:
    """Where a deleted child's things live outside the database."""

    parent_id: int
    child_id: int
    book_ids: list[int]
    draft_ids: list[str]


def delete_child(*, parent_id: int, child_id: int) -> Footprint:
    """Delete a child with their books, drafts, pictures, flags, usage and live state; returns what went.

    The user's generation lock is held throughout, so no page of this family is being made
    (and no picture being stored) while the child's things are collected and removed.
    """
    child = _own_child(parent_id, child_id)
    lock = GenerationLock(parent_id)
    lock.acquire()  # a page being made right now: AlreadyGenerating, a 409 with a sentence
    try:
        footprint = footprint_of(child)
        with transaction.atomic():
            books = Book.objects.filter(child=child)
            stored = _Stored(
                parent_id=parent_id,
                child_id=child.pk,
                book_ids=list(books.values_list("pk", flat=True)),
                draft_ids=_draft_ids(child),
            )
            # Through the ORM, so every row pointing at these books (pages, characters and
            # other apps' CASCADE foreign keys) goes with them.
            books.delete()
            # Usage is kept by draft id, so a book in progress (or put away) leaves it behind
            # unless asked by name. Flags name the child and go with it, but those recorded
            # before they did are found by draft id too: a flag even holds the child's words.
            safety.forget_drafts(user_id=parent_id, draft_ids=stored.draft_ids)
            usage_services.forget_drafts(user_id=parent_id, draft_ids=stored.draft_ids)
            child.delete()
            # Why after the commit: storage and the cache cannot roll back. Removed first, a
            # failed transaction would leave books whose pictures are gone and a child whose
            # book in progress vanished. Removed after, a failure here leaves only files no row
            # points at (drafts/ also expires by the bucket rule or purge_drafts), never a
            # book that shows a missing picture.
            transaction.on_commit(lambda: _remove_stored(stored), robust=True)
    finally:
        lock.release()
    return footprint


def _draft_ids(child: Child) -> list[str]:
    ids = drafts.draft_ids_of_child(child.pk)
    ids += list(Book.objects.filter(child=child).values_list("draft_id", flat=True))
    draft = drafts.current(child.parent_id)
    if draft is not None and draft.child_id == child.pk:
        ids.append(draft.draft_id)
    return list(dict.fromkeys(ids))


def _remove_stored(stored: _Stored) -> None:
    try:
        for draft_id in stored.draft_ids:
            live.forget_snapshot(draft_id)
        drafts.forget_child(
            user_id=stored.parent_id,
            child_id=stored.child_id,
            draft_ids=stored.draft_ids,
            more_keys=[runs.stop_key(draft_id) for draft_id in stored.draft_ids],
        )
    except Exception:  # every cache entry has a TTL; the pictures below still go
        log.error("could not clear the cache entries of a deleted child", exc_info=True)
    folders = [pictures.book_folder(book_id) for book_id in stored.book_ids]
    folders += [pictures.draft_folder(draft_id) for draft_id in stored.draft_ids]
    for folder in folders:
        try:
            pictures.delete_folder(folder)
        except Exception:  # one unreachable folder must not keep the others
            log.error("could not delete the pictures under %s of a deleted child", folder, exc_info=True)
