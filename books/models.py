"""Finished books: what is kept for good once a draft gets its title."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.urls import reverse

from books.domain import Language, PageSource


class Book(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="books")
    title = models.CharField(max_length=80)
    language = models.CharField(max_length=2, choices=[(lang.value, lang.label) for lang in Language])
    child = models.ForeignKey(
        "families.Child",
        on_delete=models.CASCADE,
        related_name="books",
        null=True,
        blank=True,
        help_text="The child the book was made with (empty for books made before children had profiles).",
    )
    draft_id = models.CharField(
        max_length=32,
        unique=True,
        help_text="The draft this book was finished from; makes finishing safe to retry.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return self.title

    def get_absolute_url(self) -> str:
        return reverse("books:read", args=[self.pk])


class Character(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="characters")
    position = models.PositiveSmallIntegerField()
    name = models.CharField(max_length=40)
    description = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["book", "position"]
        constraints = [models.UniqueConstraint(fields=["book", "position"], name="character_position_unique")]

    def __str__(self) -> str:
        return self.name


class Page(models.Model):
    book = models.ForeignKey(Book, on_delete=models.CASCADE, related_name="pages")
    number = models.PositiveSmallIntegerField()
    text = models.TextField()
    question = models.CharField(max_length=300, blank=True)
    picture = models.FileField(max_length=255, blank=True)
    child_input = models.CharField(max_length=300, blank=True)
    new_words = models.TextField(blank=True, help_text="Words from the page explained for a child.")
    source = models.CharField(
        max_length=8, choices=[(s.value, s.value) for s in PageSource], default=PageSource.AI.value
    )

    class Meta:
        ordering = ["book", "number"]
        constraints = [models.UniqueConstraint(fields=["book", "number"], name="page_number_unique")]

    def __str__(self) -> str:
        return f"{self.book} — page {self.number}"
