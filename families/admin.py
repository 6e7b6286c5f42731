"""Children in Django admin: on their own, and inline on each user."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.translation import gettext_lazy as _

from books.domain import DomainError
from families import services
from families.models import Child


@admin.register(Child)
class ChildAdmin(admin.ModelAdmin):
    list_display = ["nickname", "age_band", "parent", "book_total", "created_at"]
    list_filter = ["age_band", "created_at"]
    search_fields = ["nickname", "parent__username"]
    list_select_related = ["parent"]
    raw_id_fields = ["parent"]
    readonly_fields = ["created_at"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Child]:
        return super().get_queryset(request).annotate(book_total=Count("books"))

    @admin.display(description=_("Books"), ordering="book_total")
    def book_total(self, child: Child) -> int:
        total: int = getattr(child, "book_total", 0)
        return total

    # Deleting here goes through the same service as the parent's page: a plain ORM delete
    # would leave the child's pictures in storage and drafts in the cache.
    def delete_model(self, request: HttpRequest, obj: Child) -> None:
        self._delete(obj)

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Child]) -> None:
        for child in queryset:
            self._delete(child)

    def _delete(self, child: Child) -> None:
        try:
            services.delete_child(parent_id=child.parent_id, child_id=child.pk)
        except DomainError as refused:  # a page of this family is being made right now
            raise PermissionDenied(str(refused)) from refused


class ChildInline(admin.TabularInline):
    model = Child
    extra = 0
    fields = ["nickname", "age_band", "created_at"]
    readonly_fields = ["created_at"]


def _with_children_inline() -> None:
    """Add the children inline to whichever user admin is registered (another app may extend it too)."""
    user_model = get_user_model()
    current = admin.site.get_model_admin(user_model) if admin.site.is_registered(user_model) else None
    base: type[admin.ModelAdmin] = type(current) if current is not None else UserAdmin
    if current is not None:
        admin.site.unregister(user_model)
    inlines = [*base.inlines, ChildInline]
    admin.site.register(user_model, type("FamilyUserAdmin", (base,), {"inlines": inlines}))


_with_children_inline()
