"""Admin for reviews: where every book stands, every decision taken, and decisions on several books.

Nothing here edits a state or a decision by hand: the two actions go through the same
services as the review page, so each book still gets its own ``Decision`` row naming the
acting admin (marked "in admin"), and a book that is not waiting is skipped and named.
Rejecting needs a reason, asked for on an intermediate page, as Django's own
"delete selected" asks for confirmation.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from books.domain import DomainError
from reviews import services
from reviews.models import MAX_NOTE_LENGTH, BookReview, Decision, ShareLink


class DecisionInline(admin.TabularInline):
    model = Decision
    extra = 0
    fields = ["decided_at", "reviewer", "outcome", "note", "via_admin"]
    readonly_fields = ["decided_at", "reviewer", "outcome", "note", "via_admin"]
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RejectReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason, shown to each family"),
        max_length=MAX_NOTE_LENGTH,
        widget=forms.Textarea(attrs={"rows": 4, "cols": 80}),
        error_messages={"required": _("Give the reason these books cannot be shared.")},
    )


@admin.register(BookReview)
class BookReviewAdmin(admin.ModelAdmin):
    list_display = ["book_title", "owner", "state", "submitted_at", "decision_total", "review_link"]
    list_filter = [
        "state",
        ("decisions__reviewer", admin.RelatedOnlyFieldListFilter),
        "submitted_at",
        "decisions__decided_at",
    ]
    search_fields = ["book__title", "book__owner__username"]
    list_select_related = ["book", "book__owner"]
    date_hierarchy = "submitted_at"
    fields = ["book", "state", "parent_note", "submitted_at", "updated_at"]
    # The state moves only through decisions, never by editing the field.
    readonly_fields = ["book", "state", "parent_note", "submitted_at", "updated_at"]
    inlines = [DecisionInline]
    actions = ["approve_selected", "reject_selected"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[BookReview]:
        return super().get_queryset(request).annotate(decision_total=Count("decisions", distinct=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # a review begins when a family submits its book

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # it would take its decisions with it

    def has_review_permission(self, request: HttpRequest) -> bool:
        return services.is_reviewer(request.user)

    @admin.display(description=_("Book"), ordering="book__title")
    def book_title(self, review: BookReview) -> str:
        return review.book.title

    @admin.display(description=_("Family"), ordering="book__owner__username")
    def owner(self, review: BookReview) -> str:
        return str(review.book.owner)

    @admin.display(description=_("Decisions"), ordering="decision_total")
    def decision_total(self, review: BookReview) -> int:
        total: int = getattr(review, "decision_total", 0)
        return total

    @admin.display(description=_("Read"))
    def review_link(self, review: BookReview) -> SafeString:
        url = reverse("reviews:review", args=[review.book_id])
        return format_html('<a href="{}">{}</a>', url, gettext("Review page"))

    @admin.action(description=_("Approve selected books"), permissions=["review"])
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[BookReview]) -> None:
        self._decide_each(
            request,
            queryset,
            lambda review: services.approve(book=review.book, reviewer=request.user, via_admin=True),
        )

    @admin.action(description=_("Reject selected books…"), permissions=["review"])
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[BookReview]) -> HttpResponse | None:
        form = RejectReasonForm(request.POST if "reason_given" in request.POST else None)
        if form.is_bound and form.is_valid():
            reason = form.cleaned_data["reason"]
            self._decide_each(
                request,
                queryset,
                lambda review: services.reject(
                    book=review.book, reviewer=request.user, reason=reason, via_admin=True
                ),
            )
            return None  # back to the list, with the messages
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Reject the selected books"),
            "opts": self.model._meta,
            "reviews": queryset.select_related("book", "book__owner"),
            "form": form,
            "action_checkbox_name": helpers.ACTION_CHECKBOX_NAME,
        }
        return TemplateResponse(
            request,
            "admin/reviews/bookreview/reject_selected.html",
            context,
            status=400 if form.errors else 200,
        )

    def _decide_each(self, request: HttpRequest, queryset: QuerySet[BookReview], decide: Any) -> None:
        decided, skipped = 0, []
        for review in queryset.select_related("book").order_by("submitted_at", "id"):
            try:
                decide(review)  # one transaction per book: each is its own decision
            except DomainError as error:
                skipped.append(f"“{review.book.title}”: {error}")
            else:
                decided += 1
        if decided:
            message = ngettext("%(count)d book decided.", "%(count)d books decided.", decided)
            self.message_user(request, message % {"count": decided}, messages.SUCCESS)
        for reason in skipped:
            self.message_user(request, gettext("Skipped %(why)s") % {"why": reason}, messages.WARNING)


@admin.register(Decision)
class DecisionAdmin(admin.ModelAdmin):
    """The record of decisions: read-only here, as everywhere."""

    list_display = ["decided_at", "book_title", "owner", "outcome", "reviewer", "via_admin", "note"]
    list_filter = ["outcome", ("reviewer", admin.RelatedOnlyFieldListFilter), "decided_at", "via_admin"]
    search_fields = ["review__book__title", "review__book__owner__username", "reviewer__username", "note"]
    list_select_related = ["review__book", "review__book__owner", "reviewer"]
    date_hierarchy = "decided_at"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("Book"), ordering="review__book__title")
    def book_title(self, decision: Decision) -> str:
        return decision.review.book.title

    @admin.display(description=_("Family"), ordering="review__book__owner__username")
    def owner(self, decision: Decision) -> str:
        return str(decision.review.book.owner)


@admin.register(ShareLink)
class ShareLinkAdmin(admin.ModelAdmin):
    """Which books are shared; the links themselves are not kept, only their fingerprints."""

    list_display = ["book", "created_by", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["book__title", "created_by__username"]
    list_select_related = ["book", "created_by"]
    fields = ["book", "created_by", "created_at", "revoked_at"]
    readonly_fields = ["book", "created_by", "created_at", "revoked_at"]
    actions = ["revoke_selected"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description=_("Turn off selected links"), permissions=["change"])
    def revoke_selected(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        message = ngettext("%(count)d link turned off.", "%(count)d links turned off.", count)
        self.message_user(request, message % {"count": count}, messages.SUCCESS)
