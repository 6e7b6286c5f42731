"""What making pages used upstream, one row per section of a page run."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class UsageRecord(models.Model):
    """Tokens and pictures one section of one page run used.

    Written when the run ends, however it ends: tokens spent on a page that failed or was
    stopped were spent all the same. ``book`` is set when the draft is finished (by
    ``draft_id``); a draft put away keeps its rows without a book.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="usage_records",
        verbose_name=_("user"),
    )
    draft_id = models.CharField(_("draft"), max_length=32, db_index=True)
    book = models.ForeignKey(
        "books.Book",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="usage_records",
        verbose_name=_("book"),
    )
    page_number = models.PositiveSmallIntegerField(_("page"))
    section = models.CharField(_("section"), max_length=20)
    adapter = models.CharField(_("adapter"), max_length=20)
    model = models.CharField(_("model"), max_length=80, blank=True)
    input_tokens = models.PositiveIntegerField(_("input tokens"), default=0)
    output_tokens = models.PositiveIntegerField(_("output tokens"), default=0)
    pictures = models.PositiveSmallIntegerField(_("pictures"), default=0)
    created_at = models.DateTimeField(_("recorded at"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("usage record")
        verbose_name_plural = _("usage records")
        indexes = [models.Index(fields=["user", "created_at"], name="usage_user_created")]

    def __str__(self) -> str:
        return f"{self.draft_id} page {self.page_number} {self.section}"

    @property
    def tokens(self) -> int:
        return self.input_tokens + self.output_tokens
