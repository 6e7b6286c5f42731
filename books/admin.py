"""Admin for finished books: staff look through books, their characters and pages.

Thumbnails point at the book picture view, which checks permissions itself (admins
allowed to view books see every book) and never exposes a storage URL in the page.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.text import Truncator
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from books.models import Book, Character, Page
from usage.admin import BookUsageAdminMixin

THUMBNAIL_WIDTH = 120


def _thumbnail(page: Page) -> SafeString | str:
    if not page.pk or not page.picture:
        return "—"
    url = reverse("books:book_picture", args=[page.book_id, page.number])
    return format_html(
        '<img src="{}" alt="{}" width="{}" style="border-radius:8px" loading="lazy">',
        url,
        gettext("Page %(number)d") % {"number": page.number},
        THUMBNAIL_WIDTH,
    )


class CharacterInline(admin.TabularInline):
    model = Character
    extra = 0
    fields = ["position", "name", "description"]


class PageInline(admin.StackedInline):
    model = Page
    extra = 0
    fields = ["number", "thumbnail", "text", "question", "child_input", "source"]
    # The picture is a stored file, copied there on finish; admin shows it, never swaps it.
    readonly_fields = ["thumbnail"]

    @admin.display(description=_("Picture"))
    def thumbnail(self, page: Page) -> SafeString | str:
        return _thumbnail(page)


@admin.register(Book)
class BookAdmin(BookUsageAdminMixin, admin.ModelAdmin):
    list_display = [
        "title",
        "owner",
        "child",
        "language",
        "page_total",
        "tokens_used",
        "pictures_used",
        "created_at",
    ]
    list_filter = ["language", "created_at"]
    search_fields = ["title", "owner__username", "child__nickname", "pages__text"]
    list_select_related = ["owner", "child"]
    date_hierarchy = "created_at"
    readonly_fields = ["draft_id", "created_at", "tokens_used", "pictures_used"]
    raw_id_fields = ["owner", "child"]
    inlines = [CharacterInline, PageInline]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Book]:
        return super().get_queryset(request).annotate(page_total=Count("pages", distinct=True))

    @admin.display(description=_("Pages"), ordering="page_total")
    def page_total(self, book: Book) -> int:
        total: int = getattr(book, "page_total", 0)
        return total


@admin.register(Page)
class PageAdmin(admin.ModelAdmin):
    list_display = ["__str__", "thumbnail", "short_text", "source", "owner"]
    list_filter = ["source", "book__language", "book__created_at"]
    search_fields = ["text", "question", "child_input", "book__title", "book__owner__username"]
    list_select_related = ["book", "book__owner"]
    readonly_fields = ["thumbnail"]
    raw_id_fields = ["book"]
    fields = ["book", "number", "thumbnail", "text", "question", "child_input", "source"]

    @admin.display(description=_("Picture"))
    def thumbnail(self, page: Page) -> SafeString | str:
        return _thumbnail(page)

    @admin.display(description=_("Text"))
    def short_text(self, page: Page) -> str:
        return Truncator(page.text).chars(80)

    @admin.display(description=_("Owner"), ordering="book__owner__username")
    def owner(self, page: Page) -> str:
        return str(page.book.owner)


@admin.register(Character)
class CharacterAdmin(admin.ModelAdmin):
    list_display = ["name", "description", "book", "position"]
    search_fields = ["name", "description", "book__title"]
    list_filter = ["book__language"]
    list_select_related = ["book"]
    raw_id_fields = ["book"]
