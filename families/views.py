"""Pages for a family's children: list, add, change, delete (with a confirmation first)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.http import require_http_methods

from books.views import FamilyRequest, shows_domain_errors
from families import selectors, services
from families.forms import ChildForm


@login_required
def children(request: FamilyRequest) -> HttpResponse:
    return render(request, "families/children.html", {"children": selectors.children_of(request.user)})


@login_required
@require_http_methods(["GET", "POST"])
def add_child(request: FamilyRequest) -> HttpResponse:
    form = ChildForm(request.POST if request.method == "POST" else None, parent=request.user)
    # Only the new-book page may be returned to: an open redirect helps nobody.
    back_to_new_book = request.GET.get("next") == reverse("books:new")
    if form.is_bound and form.is_valid():
        child = services.add_child(parent_id=request.user.pk, **form.cleaned_data)
        messages.success(request, _("%(name)s is in your family now.") % {"name": child.nickname})
        return redirect("books:new" if back_to_new_book else "families:children")
    context = {"form": form, "child": None, "back_to_new_book": back_to_new_book}
    return render(request, "families/child_form.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
@shows_domain_errors
def edit_child(request: FamilyRequest, child_id: int) -> HttpResponse:
    child = selectors.child_of(request.user, child_id)
    initial = {"nickname": child.nickname, "age_band": child.age_band}
    data = request.POST if request.method == "POST" else None
    form = ChildForm(data, parent=request.user, editing=child, initial=initial)
    if form.is_bound and form.is_valid():
        services.change_child(parent_id=request.user.pk, child_id=child.pk, **form.cleaned_data)
        messages.success(request, _("%(name)s's profile is saved.") % {"name": form.cleaned_data["nickname"]})
        return redirect("families:children")
    context = {"form": form, "child": child, "back_to_new_book": False}
    return render(request, "families/child_form.html", context, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
@shows_domain_errors
def delete_child(request: FamilyRequest, child_id: int) -> HttpResponse:
    """GET says what will go; only the POST from that page deletes."""
    child = selectors.child_of(request.user, child_id)
    if request.method == "GET":
        context = {"child": child, "footprint": selectors.footprint_of(child)}
        return render(request, "families/child_delete.html", context)
    gone = services.delete_child(parent_id=request.user.pk, child_id=child.pk)
    messages.info(
        request,
        ngettext(
            "%(name)s's profile and %(count)d book were deleted.",
            "%(name)s's profile and %(count)d books were deleted.",
            gone.books,
        )
        % {"name": child.nickname, "count": gone.books},
    )
    return redirect("families:children")
