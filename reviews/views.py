"""Pages for sharing (the family), reviewing (reviewers) and reading by share link (anyone).

Reviewer pages answer 403 to anyone signed in without the reviewer permission — staff
included — before looking at any book, so they reveal nothing about which books exist.
A refused move is shown as a page with its sentence and its 4xx status.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseBase
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext
from django.views.decorators.http import require_POST

from books.domain import DomainError
from books.models import Book
from books.views import _page_number, picture_response
from reviews import selectors, services
from reviews.forms import DecisionForm, SubmitForm, decision_forms
from reviews.models import Outcome
from reviews.services import is_reviewer

View = Callable[..., HttpResponseBase]


class SignedInRequest(HttpRequest):
    """Typing only: past ``login_required`` the user is a real one."""

    user: User


def refusal_page(
    request: HttpRequest, message: str, *, status: int, back_url: str, back_label: str
) -> HttpResponse:
    context = {"message": message, "status": status, "back_url": back_url, "back_label": back_label}
    return render(request, "error.html", context, status=status)


def reviewers_only(view: View) -> View:
    @login_required
    @wraps(view)
    def checked(request: SignedInRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        if not is_reviewer(request.user):
            message = gettext("This page is for reviewers. An admin can make you one.")
            return refusal_page(
                request, message, status=403, back_url=reverse("home"), back_label=gettext("Back home")
            )
        return view(request, *args, **kwargs)

    return checked


# -- the family: sharing one of its books ----------------------------------------------------------


@login_required
def sharing(request: SignedInRequest, book_id: int) -> HttpResponse:
    book = selectors.own_book(request.user, book_id)
    return _sharing_page(request, book)


def _sharing_page(
    request: SignedInRequest,
    book: Book,
    *,
    submit_form: SubmitForm | None = None,
    new_link: str = "",
    status: int = 200,
) -> HttpResponse:
    context = {
        "book": book,
        "sharing": selectors.sharing_of(book),
        "submit_form": submit_form or SubmitForm(),
        "new_link": new_link,
    }
    return render(request, "reviews/sharing.html", context, status=status)


def _refused_sharing(request: HttpRequest, book: Book, error: DomainError) -> HttpResponse:
    back_url = reverse("reviews:sharing", args=[book.pk])
    return refusal_page(
        request, str(error), status=error.status, back_url=back_url, back_label=gettext("Back")
    )


@login_required
@require_POST
def submit(request: SignedInRequest, book_id: int) -> HttpResponse:
    book = selectors.own_book(request.user, book_id)
    form = SubmitForm(request.POST)
    if not form.is_valid():
        return _sharing_page(request, book, submit_form=form, status=400)
    try:
        services.submit_for_review(book=book, by=request.user, note=form.cleaned_data["note"])
    except DomainError as error:
        return _refused_sharing(request, book, error)
    messages.success(request, gettext("Sent to the reviewers. You will see their answer here."))
    return redirect("reviews:sharing", book_id=book.pk)


@login_required
@require_POST
def create_link(request: SignedInRequest, book_id: int) -> HttpResponse:
    """Make a link and show it this once: only its fingerprint is kept, so it cannot be shown again."""
    book = selectors.own_book(request.user, book_id)
    try:
        token = services.create_share_link(book=book, by=request.user)
    except DomainError as error:
        return _refused_sharing(request, book, error)
    link = request.build_absolute_uri(reverse("reviews:shared", args=[token]))
    response = _sharing_page(request, book, new_link=link, status=201)
    # The page holds a secret: no cache may keep it.
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_POST
def revoke_link(request: SignedInRequest, book_id: int) -> HttpResponse:
    book = selectors.own_book(request.user, book_id)
    if services.revoke_share_link(book=book, by=request.user):
        messages.info(request, gettext("The share link is turned off. Nobody can open the book with it now."))
    return redirect("reviews:sharing", book_id=book.pk)


# -- reviewers ------------------------------------------------------------------------------------


@reviewers_only
def queue(request: SignedInRequest) -> HttpResponse:
    context = {"waiting": selectors.review_queue(), "decided": selectors.recent_decisions()}
    return render(request, "reviews/queue.html", context)


@reviewers_only
def review(request: SignedInRequest, book_id: int) -> HttpResponse:
    return _review_page(request, selectors.book_for_review(book_id))


def _review_page(
    request: SignedInRequest, book: Book, *, bound: DecisionForm | None = None, status: int = 200
) -> HttpResponse:
    pages = list(book.pages.all())
    context = {
        "book": book,
        "review": selectors.review_of(book),
        "pages": pages,
        "child_inputs": sum(1 for page in pages if page.child_input),
        "flags": selectors.moderation_flags(book),
        "forms": decision_forms(bound),
        "own_book": book.owner_id == request.user.pk,
    }
    return render(request, "reviews/review.html", context, status=status)


DECISIONS: dict[str, Outcome] = {
    "approve": Outcome.APPROVED,
    "send-back": Outcome.SENT_BACK,
    "reject": Outcome.REJECTED,
    "withdraw": Outcome.WITHDRAWN,
}


@reviewers_only
@require_POST
def decide(request: SignedInRequest, book_id: int, decision: str) -> HttpResponse:
    outcome = DECISIONS.get(decision)
    if outcome is None:
        raise Http404("There is no such decision.")
    book = selectors.book_for_review(book_id)
    form = DecisionForm(request.POST, outcome=outcome)
    if not form.is_valid():
        return _review_page(request, book, bound=form, status=400)
    try:
        _take(outcome, book=book, reviewer=request.user, note=form.cleaned_data["note"])
    except DomainError as error:
        back_url = reverse("reviews:review", args=[book.pk])
        return refusal_page(
            request,
            str(error),
            status=error.status,
            back_url=back_url,
            back_label=gettext("Back to the book"),
        )
    messages.success(request, _decided_message(outcome, book))
    return redirect("reviews:queue")


def _take(outcome: Outcome, *, book: Book, reviewer: Any, note: str) -> None:
    if outcome == Outcome.APPROVED:
        services.approve(book=book, reviewer=reviewer, note=note)
    elif outcome == Outcome.SENT_BACK:
        services.send_back(book=book, reviewer=reviewer, note=note)
    elif outcome == Outcome.REJECTED:
        services.reject(book=book, reviewer=reviewer, reason=note)
    else:
        services.withdraw_approval(book=book, reviewer=reviewer, reason=note)


def _decided_message(outcome: Outcome, book: Book) -> str:
    sentences = {
        Outcome.APPROVED: gettext("“%(title)s” is approved: its family can share it now."),
        Outcome.SENT_BACK: gettext("“%(title)s” went back to its family with your note."),
        Outcome.REJECTED: gettext("“%(title)s” is rejected; it stays private to its family."),
        Outcome.WITHDRAWN: gettext(
            "The approval of “%(title)s” is withdrawn; its share links no longer open."
        ),
    }
    return sentences[outcome] % {"title": book.title}


@reviewers_only
def review_picture(request: SignedInRequest, book_id: int, number: int) -> HttpResponseBase:
    return picture_response(selectors.review_picture_name(book_id, number))


# -- anyone with a share link ------------------------------------------------------------------------


def shared(request: HttpRequest, token: str) -> HttpResponse:
    """The book read-only, one page at a time: ``?page=0`` (or none) is the cover, then 1..N."""
    try:
        book = selectors.shared_book(token)
    except Http404:
        message = gettext("This link does not open a book: it may have been turned off. Ask for a new one.")
        gone = refusal_page(
            request, message, status=404, back_url=reverse("home"), back_label=gettext("Visit LittleWriter")
        )
        return _keep_the_link_to_itself(gone)
    pages = list(book.pages.all())
    number = _page_number(request.GET.get("page"), len(pages))
    context = {
        "book": book,
        "token": token,
        "pages": pages,
        "number": number,
        "page": pages[number - 1] if number else None,
        "cover_page": pages[0] if pages else None,
        "previous_number": number - 1 if number > 0 else None,
        "next_number": number + 1 if number < len(pages) else None,
    }
    return _keep_the_link_to_itself(render(request, "reviews/shared.html", context))


def shared_picture(request: HttpRequest, token: str, number: int) -> HttpResponseBase:
    return _keep_the_link_to_itself(picture_response(selectors.shared_picture_name(token, number)))


def _keep_the_link_to_itself[R: HttpResponseBase](response: R) -> R:
    # The token is in the address: never pass it on as a Referer, and keep the page out of search engines.
    response["Referrer-Policy"] = "no-referrer"
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response
