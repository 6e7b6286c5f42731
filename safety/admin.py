"""Moderation flags in admin: read-only, to look through by category, source and date."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _

from safety.models import CONCERN_LABELS, ModerationFlag


class CategoryFilter(admin.SimpleListFilter):
    title = _("category")
    parameter_name = "category"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [(concern.value, label) for concern, label in CONCERN_LABELS.items()]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ModerationFlag]) -> QuerySet[ModerationFlag]:
        value = self.value()
        if not value:
            return queryset
        # JSON ``contains`` is not available on SQLite; the quoted name matches one list item
        # in the stored JSON text on every database.
        return queryset.filter(categories__icontains=f'"{value}"')


@admin.register(ModerationFlag)
class ModerationFlagAdmin(admin.ModelAdmin):
    list_display = ["created_at", "user", "source", "category_list", "short_text", "page_number", "book"]
    list_filter = [CategoryFilter, "source", "moderator", "created_at"]
    search_fields = ["user__username", "text"]
    list_select_related = ["user", "book"]
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "user",
        "draft_id",
        "child",
        "book",
        "page_number",
        "source",
        "text",
        "categories",
        "reason",
        "moderator",
    )
    readonly_fields = fields

    @admin.display(description=_("categories"))
    def category_list(self, flag: ModerationFlag) -> str:
        labels = {concern.value: label for concern, label in CONCERN_LABELS.items()}
        return ", ".join(str(labels.get(name, name)) for name in flag.categories)

    @admin.display(description=_("text"))
    def short_text(self, flag: ModerationFlag) -> str:
        return Truncator(flag.text).chars(80)

    # A flag is a record of what happened: nobody adds, edits or deletes one by hand.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: ModerationFlag | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: ModerationFlag | None = None) -> bool:
        return False
