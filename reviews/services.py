"""Use cases of review and sharing: submitting a book, deciding on it, sharing it by link.

Every decision adds one ``Decision`` row in the same transaction that changes the
book's state, under a row lock, so two reviewers deciding at once cannot both win: the
second finds the state changed and gets the refusal's sentence.

Share links: the token is ``secrets.token_urlsafe(32)`` (256 random bits) and only its
SHA-256 is stored. A database dump, a backup or an admin page therefore holds no link
that opens a family's book, and the lookup compares digests, so the token's own bytes
never go through a timing-sensitive comparison. No salt or slow hash is needed: there is
no dictionary of likely tokens to try. The price is that the family sees the link once,
when it is made; a lost link is replaced by making a new one.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.contrib.contenttypes.models import ContentType
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext

from books.domain import DomainError, IllegalMove
from books.models import Book
from reviews.models import (
    MAX_NOTE_LENGTH,
    NEEDS_A_NOTE,
    REVIEWERS_GROUP,
    BookReview,
    Decision,
    Outcome,
    ShareLink,
    SharingState,
)

SHARE_TOKEN_BYTES = 32


class NotAReviewer(DomainError):
    """Deciding needs the reviewer permission; being staff is not enough."""

    status = 403


class NoteNeeded(DomainError):
    """Sending back, rejecting and withdrawing say why."""


class NotTheirs(DomainError):
    """The book belongs to another family (said as "not found", so ids leak nothing)."""

    status = 404


def is_reviewer(user: Any) -> bool:
    return bool(user.is_authenticated and user.has_perm("reviews.review_books"))


# -- the family ----------------------------------------------------------------------------------


@transaction.atomic
def submit_for_review(*, book: Book, by: Any, note: str = "") -> BookReview:
    """Ask for a review: a private book, or one sent back, goes to the reviewers' queue."""
    _require_owner(book, by)
    note = note.strip()
    if len(note) > MAX_NOTE_LENGTH:
        raise NoteNeeded(gettext("Keep the note under %(limit)d characters.") % {"limit": MAX_NOTE_LENGTH})
    review, _created = BookReview.objects.select_for_update().get_or_create(book=book)
    review.submit(note=note, at=timezone.now())
    review.save()
    return review


@transaction.atomic
def create_share_link(*, book: Book, by: Any) -> str:
    """A new read-only link to an approved book; any earlier link stops working. Returns the token."""
    _require_owner(book, by)
    review = BookReview.objects.select_for_update().filter(book=book).first()
    state = SharingState(review.state) if review else SharingState.PRIVATE
    if state != SharingState.APPROVED:
        raise IllegalMove(_why_not_shareable(state))
    _revoke_links(book)
    token = secrets.token_urlsafe(SHARE_TOKEN_BYTES)
    ShareLink.objects.create(book=book, token_hash=token_digest(token), created_by=by)
    return token


@transaction.atomic
def revoke_share_link(*, book: Book, by: Any) -> int:
    """Turn the book's link off; returns how many links stopped working (0 when there was none)."""
    _require_owner(book, by)
    return _revoke_links(book)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _why_not_shareable(state: SharingState) -> str:
    if state == SharingState.REJECTED:
        return gettext("A reviewer did not accept this book for sharing, so it cannot be shared.")
    if state == SharingState.SUBMITTED:
        return gettext("This book is still waiting for a reviewer; it can be shared once it is approved.")
    return gettext("Only a book approved by a reviewer can be shared. Ask for a review first.")


def _require_owner(book: Book, user: Any) -> None:
    if book.owner_id != user.pk:
        raise NotTheirs(gettext("There is no such book among yours."))


def _revoke_links(book: Book) -> int:
    return ShareLink.objects.filter(book=book, revoked_at__isnull=True).update(revoked_at=timezone.now())


# -- reviewers -----------------------------------------------------------------------------------


def approve(*, book: Book, reviewer: Any, note: str = "", via_admin: bool = False) -> Decision:
    return _decide(book=book, reviewer=reviewer, outcome=Outcome.APPROVED, note=note, via_admin=via_admin)


def send_back(*, book: Book, reviewer: Any, note: str, via_admin: bool = False) -> Decision:
    return _decide(book=book, reviewer=reviewer, outcome=Outcome.SENT_BACK, note=note, via_admin=via_admin)


def reject(*, book: Book, reviewer: Any, reason: str, via_admin: bool = False) -> Decision:
    return _decide(book=book, reviewer=reviewer, outcome=Outcome.REJECTED, note=reason, via_admin=via_admin)


def withdraw_approval(*, book: Book, reviewer: Any, reason: str, via_admin: bool = False) -> Decision:
    """An approved book goes back to its family; its share links stop working at once."""
    return _decide(book=book, reviewer=reviewer, outcome=Outcome.WITHDRAWN, note=reason, via_admin=via_admin)


@transaction.atomic
def _decide(*, book: Book, reviewer: Any, outcome: Outcome, note: str, via_admin: bool) -> Decision:
    if not is_reviewer(reviewer):
        raise NotAReviewer(gettext("Only reviewers can decide on books."))
    if book.owner_id == reviewer.pk:
        raise IllegalMove(gettext("You cannot review your own book; another reviewer will."))
    note = note.strip()
    if outcome in NEEDS_A_NOTE and not note:
        raise NoteNeeded(_note_needed(outcome))
    if len(note) > MAX_NOTE_LENGTH:
        raise NoteNeeded(gettext("Keep the note under %(limit)d characters.") % {"limit": MAX_NOTE_LENGTH})
    review = BookReview.objects.select_for_update().filter(book=book).first()
    if review is None:
        raise IllegalMove(gettext("This book was not submitted for review."))
    was_approved = review.state == SharingState.APPROVED
    review.decide(outcome)
    review.save(update_fields=["state", "updated_at"])
    if was_approved:
        _revoke_links(book)
    return Decision.objects.create(
        review=review, reviewer=reviewer, outcome=outcome, note=note, via_admin=via_admin
    )


def _note_needed(outcome: Outcome) -> str:
    if outcome == Outcome.SENT_BACK:
        return gettext("Write a note for the family: say what to change before it is shared.")
    if outcome == Outcome.REJECTED:
        return gettext("Give the reason this book cannot be shared.")
    return gettext("Give the reason the approval is withdrawn.")


# -- who reviews ---------------------------------------------------------------------------------


@transaction.atomic
def reviewers_group() -> Group:
    """The "Reviewers" group holding the review permission (made here too if the data was flushed)."""
    content_type = ContentType.objects.get_for_model(BookReview)
    permission, _created = Permission.objects.get_or_create(
        codename="review_books",
        content_type=content_type,
        defaults={"name": "Can review books before they are shared"},
    )
    group, _created = Group.objects.get_or_create(name=REVIEWERS_GROUP)
    group.permissions.add(permission)
    return group


@transaction.atomic
def make_reviewer(*, user: Any) -> bool:
    """Put the user in the Reviewers group; False when they already were."""
    group = reviewers_group()
    if user.groups.filter(pk=group.pk).exists():
        return False
    user.groups.add(group)
    return True


@transaction.atomic
def stop_reviewing(*, user: Any) -> bool:
    """Take the user out of the Reviewers group; False when they were not in it."""
    group = reviewers_group()
    if not user.groups.filter(pk=group.pk).exists():
        return False
    user.groups.remove(group)
    return True
