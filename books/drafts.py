"""The book in progress lives in the Django cache, one per user, as a JSON document.

Redis (django-redis, JSON serializer) in production, Django's database cache by default.
Every save refreshes the TTL. A small "seen" marker outlives the draft so that an
expired draft can be told apart from one that never existed.
"""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.utils.translation import gettext_noop

from books.domain import AlreadyGenerating, BookDraft, DomainError

SEEN_TTL_SECONDS = 60 * 60 * 24 * 60
# The run refreshes its lock every few seconds; a dead server's lock lapses after this.
LOCK_SECONDS = 30


class DraftNotFound(DomainError):
    status = 404


class DraftExpired(DomainError):
    status = 410


NOT_FOUND_SENTENCE = gettext_noop("There is no such book in progress among yours.")
EXPIRED_SENTENCE = gettext_noop(
    "This book in progress was put away after a long time without anything happening, "
    "so it can't be continued. Start a new one whenever you like."
)


def _draft_key(user_id: int) -> str:
    return f"draft:user:{user_id}"


def _seen_key(user_id: int, draft_id: str) -> str:
    return f"draft:seen:{user_id}:{draft_id}"


def _generation_key(user_id: int) -> str:
    return f"draft:generating:{user_id}"


def _child_key(child_id: int) -> str:
    return f"draft:child:{child_id}"


def ttl_seconds() -> int:
    ttl: int = settings.LITTLEWRITER["DRAFT_TTL_SECONDS"]
    return ttl


def save(draft: BookDraft) -> None:
    cache.set(_draft_key(draft.owner_id), draft.to_dict(), timeout=ttl_seconds())
    cache.set(_seen_key(draft.owner_id, draft.draft_id), 1, timeout=SEEN_TTL_SECONDS)
    if draft.child_id is not None:
        cache.touch(_child_key(draft.child_id), _child_index_seconds())


# -- drafts per child ------------------------------------------------------------------------
#
# A child's drafts outlive the one "current draft" key: a discarded, expired or finished
# draft can still have pictures under drafts/<id>/ until the daily purge. Deleting a child
# must find them all, so every draft id a child ever had is listed under the child, for as
# long as any of its pictures or live state can exist.


def _child_index_seconds() -> int:
    # Pictures of a draft are kept its TTL rounded up to days; a day more is slack.
    return max(SEEN_TTL_SECONDS, ttl_seconds() + 2 * 86400)


def remember_for_child(child_id: int, draft_id: str) -> None:
    """List a new draft under its child (one parent starts one book at a time, so no race to fear)."""
    ids = draft_ids_of_child(child_id)
    if draft_id not in ids:
        ids.append(draft_id)
    cache.set(_child_key(child_id), ids, timeout=_child_index_seconds())


def draft_ids_of_child(child_id: int) -> list[str]:
    """Every draft id started with this child that may still have something stored."""
    ids: list[str] | None = cache.get(_child_key(child_id))
    return list(ids or [])


def forget_child(*, user_id: int, child_id: int, draft_ids: list[str], more_keys: list[str]) -> None:
    """Remove the cache entries of the child's drafts: the current one (if it is the child's),
    the "seen" markers, the per-child list itself and ``more_keys`` (other modules' keys)."""
    keys = [_child_key(child_id), *more_keys]
    keys += [_seen_key(user_id, draft_id) for draft_id in draft_ids]
    draft = current(user_id)
    if draft is not None and (draft.child_id == child_id or draft.draft_id in draft_ids):
        keys.append(_draft_key(user_id))
    cache.delete_many(keys)


def current(user_id: int) -> BookDraft | None:
    """The user's book in progress, if any (its TTL is refreshed by the next save, not here)."""
    data: dict[str, Any] | None = cache.get(_draft_key(user_id))
    return BookDraft.from_dict(data) if data else None


def load(user_id: int, draft_id: str, *, touch: bool = True) -> BookDraft:
    """The user's draft with this id; refuses anyone else's and says when it expired.

    Loading refreshes its TTL: someone is at the book. ``touch=False`` is for a step that
    saves the draft next, or has just saved it, which refreshes the TTL anyway.
    """
    draft = current(user_id)
    if draft is not None and draft.draft_id == draft_id:
        if touch:
            cache.touch(_draft_key(user_id), ttl_seconds())
        return draft
    if draft is None and cache.get(_seen_key(user_id, draft_id)):
        raise DraftExpired(EXPIRED_SENTENCE)
    raise DraftNotFound(NOT_FOUND_SENTENCE)


def delete(draft: BookDraft) -> None:
    cache.delete_many(
        [
            _draft_key(draft.owner_id),
            _seen_key(draft.owner_id, draft.draft_id),
            _generation_key(draft.owner_id),
        ]
    )


class GenerationLock:
    """Only one page of a user's book is made at a time, across every server process.

    ``cache.add`` is atomic on Redis (SET NX) and on the database cache (INSERT), so two
    concurrent requests cannot both win. The run refreshes the lock while it lives; a
    server that dies mid-page lets it lapse, so the book can be retried, not left
    "generating" forever.
    """

    def __init__(self, user_id: int) -> None:
        self.key = _generation_key(user_id)
        # Names this hold of the lock: a stop request is addressed to it (``streaming/runs.py``).
        self.token = secrets.token_hex(8)

    def acquire(self) -> None:
        if not cache.add(self.key, self.token, timeout=LOCK_SECONDS):
            raise AlreadyGenerating(gettext_noop("A page is being made right now; wait for it to finish."))

    def refresh(self, seconds: int = 0) -> bool:
        """Keep the lock a while longer; False when it was lost (lapsed, or taken over)."""
        if cache.get(self.key) != self.token:
            return False
        return bool(cache.touch(self.key, seconds or LOCK_SECONDS))

    def release(self) -> None:
        if cache.get(self.key) == self.token:
            cache.delete(self.key)

    @staticmethod
    def is_held(user_id: int) -> bool:
        return cache.get(_generation_key(user_id)) is not None

    @staticmethod
    def holder(user_id: int) -> str | None:
        """The token of whoever holds the user's lock now, if anyone."""
        token: str | None = cache.get(_generation_key(user_id))
        return token
