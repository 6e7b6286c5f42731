"""Finished books: what is kept for good once a draft gets its title."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from books.domain import Language, PageSource

# The domain marks its language names English; admin and the review page show them translated.
LANGUAGE_CHOICES = [(language.value, _(language.label)) for language in Language]
PAGE_SOURCE_LABELS = {PageSource.AI: _("storyteller"), PageSource.PARENT: _("parent")}


class Book(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="books", verbose_name=_("owner")
    )
    title = models.CharField(_("title"), max_length=80)
    language = models.CharField(_("language"), max_length=2, choices=LANGUAGE_CHOICES)
    child = models.ForeignKey(
        "families.Child",
        on_delete=models.CASCADE,
        related_name="books",
        null=True,
        blank=True,
        verbose_name=_("child"),
        help_text=_("The child the book was made with (empty for books made before children had profiles)."),
    )
    draft_id = models.CharField(
        _("draft"),
        max_length=32,
        unique=True,
        help_text=_("The draft this book was finished from; makes finishing safe to retry."),
    )
    created_at = models.DateTimeField(_("finished at"), auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("book")
        verbose_name_plural = _("books")

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("books:read", args=[self.pk])


class Character(models.Model):
    book = models.ForeignKey(
        Book, on_delete=models.CASCADE, related_name="characters", verbose_name=_("book")
    )
    position = models.PositiveSmallIntegerField(_("position"))
    name = models.CharField(_("name"), max_length=40)
    description = models.CharField(_("description"), max_length=200, blank=True)

    class Meta:
        ordering = ["book", "position"]
        constraints = [models.UniqueConstraint(fields=["book", "position"], name="character_position_unique")]
        verbose_name = _("character")
        verbose_name_plural = _("characters")

    def __str__(self) -> str:
        return self.name


class Page(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="pages", verbose_name=_("book"))
    number = models.PositiveSmallIntegerField(_("number"))
    text = models.TextField(_("text"))
    question = models.CharField(_("question"), max_length=300, blank=True)
    picture = models.FileField(_("picture"), max_length=255, blank=True)
    child_input = models.CharField(_("child's idea"), max_length=300, blank=True)
    new_words = models.TextField(
        _("new words"), blank=True, help_text=_("Words from the page explained for a child.")
    )
    source = models.CharField(
        _("written by"),
        max_length=8,
        choices=[(source.value, label) for source, label in PAGE_SOURCE_LABELS.items()],
        default=PageSource.AI.value,
    )

    class Meta:
        ordering = ["book", "number"]
        constraints = [models.UniqueConstraint(fields=["book", "number"], name="page_number_unique")]
        verbose_name = _("page")
        verbose_name_plural = _("pages")

    def __str__(self) -> str:
        return gettext("%(book)s — page %(number)d") % {"book": self.book, "number": self.number}
