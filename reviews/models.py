"""A finished book's way out of its family: submitted, decided by a reviewer, then shared by link.

    private ──submit──▶ submitted ──approve──▶ approved ──withdraw──▶ sent back
                          │   │                                          │
                          │   └──send back──▶ sent back ──submit─────────┘──▶ submitted
                          └──reject──▶ rejected (final: never shared)

Each transition checks the current state, refuses with a sentence when it does not fit,
then changes it; ``reviews.services`` saves it with a ``Decision`` row per decision.
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from books.domain import IllegalMove
from books.models import Book

REVIEW_PERMISSION = "reviews.review_books"
REVIEWERS_GROUP = "Reviewers"
MAX_NOTE_LENGTH = 1000


class SharingState(models.TextChoices):
    PRIVATE = "private", _("Private to your family")
    SUBMITTED = "submitted", _("Waiting for review")
    SENT_BACK = "sent_back", _("Sent back")
    REJECTED = "rejected", _("Not accepted for sharing")
    APPROVED = "approved", _("Approved for sharing")


class Outcome(models.TextChoices):
    APPROVED = "approved", _("Approved")
    SENT_BACK = "sent_back", _("Sent back")
    REJECTED = "rejected", _("Rejected")
    WITHDRAWN = "withdrawn", _("Approval withdrawn")


# Where each decision leaves the book. Withdrawing an approval sends the book back rather
# than rejecting it for good: the family reads why and may ask again.
STATE_AFTER = {
    Outcome.APPROVED: SharingState.APPROVED,
    Outcome.SENT_BACK: SharingState.SENT_BACK,
    Outcome.REJECTED: SharingState.REJECTED,
    Outcome.WITHDRAWN: SharingState.SENT_BACK,
}
NEEDS_A_NOTE = {Outcome.SENT_BACK, Outcome.REJECTED, Outcome.WITHDRAWN}


class BookReview(models.Model):
    """Where a book stands on its way to being shared; created when it is first submitted."""

    book = models.OneToOneField(Book, on_delete=models.CASCADE, related_name="review", verbose_name=_("book"))
    state = models.CharField(
        _("sharing state"),
        max_length=12,
        choices=SharingState.choices,
        default=SharingState.PRIVATE,
        db_index=True,
    )
    parent_note = models.TextField(
        _("family's note"), blank=True, help_text=_("What the family wrote to the reviewer.")
    )
    submitted_at = models.DateTimeField(_("submitted at"), null=True, blank=True, db_index=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        ordering = ["submitted_at", "id"]
        permissions = [("review_books", _("Can review books before they are shared"))]
        verbose_name = _("book review")
        verbose_name_plural = _("book reviews")

    def __str__(self) -> str:
        return f"{self.book} ({self.get_state_display()})"

    # -- transitions ---------------------------------------------------------------------------

    def submit(self, *, note: str, at: datetime) -> None:
        if self.state == SharingState.SUBMITTED:
            raise IllegalMove(gettext("This book is already waiting for a reviewer."))
        if self.state == SharingState.APPROVED:
            raise IllegalMove(gettext("This book is already approved for sharing."))
        if self.state == SharingState.REJECTED:
            raise IllegalMove(
                gettext("A reviewer did not accept this book for sharing, so it cannot be submitted again.")
            )
        self.state = SharingState.SUBMITTED
        self.parent_note = note
        self.submitted_at = at

    def decide(self, outcome: Outcome) -> None:
        if outcome == Outcome.WITHDRAWN:
            if self.state != SharingState.APPROVED:
                raise IllegalMove(gettext("Only an approved book can have its approval withdrawn."))
        elif self.state != SharingState.SUBMITTED:
            raise IllegalMove(self._not_waiting())
        self.state = STATE_AFTER[outcome]

    def _not_waiting(self) -> str:
        return {
            SharingState.PRIVATE: gettext("This book was not submitted for review."),
            SharingState.SENT_BACK: gettext(
                "This book was sent back to its family and has not been submitted again."
            ),
            SharingState.REJECTED: gettext(
                "This book was already rejected; there is nothing left to decide."
            ),
            SharingState.APPROVED: gettext(
                "This book was already approved; there is nothing left to decide."
            ),
        }.get(SharingState(self.state), gettext("This book is not waiting for review."))

    @property
    def can_be_submitted(self) -> bool:
        return self.state in (SharingState.PRIVATE, SharingState.SENT_BACK)


class Decision(models.Model):
    """One reviewer's decision on one book. The app only ever adds these rows."""

    review = models.ForeignKey(
        BookReview, on_delete=models.CASCADE, related_name="decisions", verbose_name=_("book review")
    )
    # PROTECT: a reviewer's account cannot vanish from under the decisions they took.
    reviewer = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="review_decisions",
        verbose_name=_("reviewer"),
    )
    outcome = models.CharField(_("outcome"), max_length=12, choices=Outcome.choices)
    note = models.TextField(_("note"), blank=True, help_text=_("The note to the family, or the reason."))
    decided_at = models.DateTimeField(_("decided at"), default=timezone.now, db_index=True)
    via_admin = models.BooleanField(
        _("in admin"), default=False, help_text=_("Taken with an action in Django admin.")
    )

    class Meta:
        ordering = ["-decided_at", "-id"]
        verbose_name = _("decision")
        verbose_name_plural = _("decisions")

    def __str__(self) -> str:
        return gettext("%(outcome)s: %(book)s by %(reviewer)s") % {
            "outcome": self.get_outcome_display(),
            "book": self.review.book,
            "reviewer": self.reviewer,
        }


class ShareLink(models.Model):
    """A read-only link to an approved book. Only the token's SHA-256 is kept (see ``services``)."""

    book = models.ForeignKey(
        Book, on_delete=models.CASCADE, related_name="share_links", verbose_name=_("book")
    )
    token_hash = models.CharField(_("link fingerprint"), max_length=64, unique=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+", verbose_name=_("created by")
    )
    created_at = models.DateTimeField(_("created at"), default=timezone.now)
    revoked_at = models.DateTimeField(_("turned off at"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("share link")
        verbose_name_plural = _("share links")

    def __str__(self) -> str:
        if self.revoked_at:
            return gettext("%(book)s (turned off)") % {"book": self.book}
        return gettext("%(book)s (active)") % {"book": self.book}

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
