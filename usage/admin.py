"""Usage in admin: every record, filtered and searched, and totals on each book."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import F, IntegerField, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from usage.models import UsageRecord


@admin.register(UsageRecord)
class UsageRecordAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "user",
        "book",
        "draft_id",
        "page_number",
        "section",
        "adapter",
        "model",
        "input_tokens",
        "output_tokens",
        "pictures",
    ]
    list_filter = [
        ("user", admin.RelatedOnlyFieldListFilter),
        "created_at",
        "section",
        "adapter",
        "model",
    ]
    search_fields = ["user__username", "draft_id", "book__title", "model"]
    list_select_related = ["user", "book"]
    date_hierarchy = "created_at"

    # A record is a fact about what was spent: it is looked at, never typed in or changed.
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def _book_sum(expression: Any) -> Coalesce:
    # A subquery per total: summing over a join with the book's pages would multiply every figure.
    summed = (
        UsageRecord.objects.filter(book=OuterRef("pk"))
        .order_by()
        .values("book")
        .annotate(total=Sum(expression))
        .values("total")
    )
    return Coalesce(Subquery(summed, output_field=IntegerField()), 0)


class BookUsageAdminMixin:
    """Adds "tokens used" and "pictures used" to the Book admin (list and change page)."""

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset: QuerySet[Any] = super().get_queryset(request)  # type: ignore[misc]
        return queryset.annotate(
            tokens_used=_book_sum(F("input_tokens") + F("output_tokens")),
            pictures_used=_book_sum(F("pictures")),
        )

    @admin.display(description=_("Tokens used"), ordering="tokens_used")
    def tokens_used(self, book: Any) -> int:
        return int(getattr(book, "tokens_used", 0) or 0)

    @admin.display(description=_("Pictures used"), ordering="pictures_used")
    def pictures_used(self, book: Any) -> int:
        return int(getattr(book, "pictures_used", 0) or 0)
