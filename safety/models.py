"""Moderation flags: every time a moderator held text back, who wrote or asked for it, and why."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from books.ports import Concern


class FlagSource(models.TextChoices):
    """Where the text came from: something a family typed, or a section of a generated page."""

    CHILD_IDEA = "child_idea", _("The child's idea for a page")
    PARENT_PAGE = "parent_page", _("A page the parent wrote")
    CHARACTERS = "characters", _("The characters")
    TITLE = "title", _("The book's title")
    STORY = "story", _("Generated story")
    QUESTION = "question", _("Generated question")
    NEW_WORDS = "new_words", _("Generated new words")


CONCERN_LABELS = {
    Concern.VIOLENCE: _("Violence"),
    Concern.SEXUAL: _("Sexual"),
    Concern.SELF_HARM: _("Self-harm"),
    Concern.HATE: _("Hate or insults"),
    Concern.ILLICIT: _("Illicit"),
    Concern.PERSONAL_DETAILS: _("Personal details"),
}


class ModerationFlag(models.Model):
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="moderation_flags",
        verbose_name=_("user"),
    )
    draft_id = models.CharField(_("draft"), max_length=32, db_index=True)
    # Words about the child can be refused before any draft is kept (the characters), so no
    # draft id leads the child's deletion to their flag: the database takes it with the child.
    child = models.ForeignKey(
        "families.Child",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="moderation_flags",
        verbose_name=_("child"),
        help_text=_("The child the book was made with; the flag goes when their profile is deleted."),
    )
    book = models.ForeignKey(
        "books.Book",
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="moderation_flags",
        verbose_name=_("book"),
        help_text=_("Set when the draft is finished as a book."),
    )
    page_number = models.PositiveSmallIntegerField(_("page"), null=True, blank=True)
    source = models.CharField(_("source"), max_length=16, choices=FlagSource.choices)
    text = models.TextField(_("text"))
    categories = models.JSONField(_("categories"), default=list)
    reason = models.CharField(_("what was found"), max_length=300, blank=True)
    moderator = models.CharField(_("moderator"), max_length=100)
    created_at = models.DateTimeField(_("flagged at"), default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("moderation flag")
        verbose_name_plural = _("moderation flags")

    def __str__(self) -> str:
        return f"{self.get_source_display()} · {', '.join(self.categories)}"
