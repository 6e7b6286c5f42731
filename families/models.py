"""A parent's children: every book is made with one of them, written for their age band."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from books.domain import AgeBand

MAX_NICKNAME_LENGTH = 40

AGE_BAND_LABELS = {
    AgeBand.THREE_TO_FIVE: _("3–5 years"),
    AgeBand.SIX_TO_EIGHT: _("6–8 years"),
    AgeBand.NINE_TO_TEN: _("9–10 years"),
}


class Child(models.Model):
    parent = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="children",
        verbose_name=_("parent"),
    )
    nickname = models.CharField(_("nickname"), max_length=MAX_NICKNAME_LENGTH)
    age_band = models.CharField(
        _("age band"), max_length=4, choices=[(band.value, label) for band, label in AGE_BAND_LABELS.items()]
    )
    created_at = models.DateTimeField(_("added on"), auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        verbose_name = _("child")
        verbose_name_plural = _("children")

    def __str__(self) -> str:
        return self.nickname

    @property
    def band(self) -> AgeBand:
        return AgeBand(self.age_band)
