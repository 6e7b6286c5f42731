"""Reviews in Django admin: the record of decisions, filters, search, and deciding on several books."""

from __future__ import annotations

import html
from typing import Any

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.test import Client
from django.urls import reverse

from reviews import services
from reviews.models import BookReview, Decision, Outcome, SharingState
from tests.reviewing import client_for, finished_book, make_reviewer, make_staff

pytestmark = pytest.mark.django_db

CHANGELIST = "admin:reviews_bookreview_changelist"


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


@pytest.fixture
def admin_user(db: None) -> Any:
    from django.contrib.auth import get_user_model

    return get_user_model().objects.create_superuser("root", "root@example.com", "a-long-admin-password-42")


@pytest.fixture
def books(parent: Any, other_parent: Any) -> list[Any]:
    """Three submitted books (two families) and one already approved."""
    waiting = [
        finished_book(parent, "The Blue Door"),
        finished_book(other_parent, "Moon Picnic"),
        finished_book(parent, "Snail Race"),
    ]
    done = finished_book(other_parent, "Already Approved")
    for book in [*waiting, done]:
        services.submit_for_review(book=book, by=book.owner)
    services.approve(book=done, reviewer=make_reviewer("rita"))
    return [*waiting, done]


def reviews_of(books: list[Any]) -> list[str]:
    return [str(review.pk) for review in BookReview.objects.filter(book__in=books)]


def test_the_changelist_filters_by_state_and_reviewer_and_searches_title_and_owner(
    admin_client: Client, books: list[Any]
) -> None:
    url = reverse(CHANGELIST)
    everything = text_of(admin_client.get(url))
    assert all(book.title in everything for book in books)

    def titles(**query: str) -> set[str]:
        response = admin_client.get(url, query)
        assert response.status_code == 200
        return {book.title for book in books if book.title in text_of(response)}

    assert titles(state__exact="approved") == {"Already Approved"}
    assert titles(state__exact="submitted") == {"The Blue Door", "Moon Picnic", "Snail Race"}
    rita = Decision.objects.get().reviewer
    sol = make_reviewer("sol")
    services.approve(book=books[2], reviewer=sol)
    assert titles(decisions__reviewer__id__exact=str(rita.pk)) == {"Already Approved"}
    assert titles(decisions__reviewer__id__exact=str(sol.pk)) == {"Snail Race"}
    assert titles(q="Moon") == {"Moon Picnic"}
    assert titles(q="ben") == {"Moon Picnic", "Already Approved"}
    assert titles(state__exact="approved", submitted_at__gte="2000-01-01 00:00:00+00:00") == {
        "Already Approved",
        "Snail Race",
    }


def test_approve_selected_records_a_decision_per_book_and_skips_what_is_not_waiting(
    admin_client: Client, admin_user: Any, books: list[Any]
) -> None:
    response = admin_client.post(
        reverse(CHANGELIST),
        {"action": "approve_selected", ACTION_CHECKBOX_NAME: reviews_of(books)},
        follow=True,
    )
    assert response.status_code == 200
    page = text_of(response)
    assert "3 books decided." in page
    assert "Skipped “Already Approved”: This book was already approved" in page
    mine = Decision.objects.filter(reviewer__username="root").order_by("review__book__title")
    assert [(d.review.book.title, d.outcome, d.via_admin) for d in mine] == [
        ("Moon Picnic", Outcome.APPROVED, True),
        ("Snail Race", Outcome.APPROVED, True),
        ("The Blue Door", Outcome.APPROVED, True),
    ]
    assert set(BookReview.objects.values_list("state", flat=True)) == {SharingState.APPROVED}


def test_reject_selected_asks_for_a_reason_first(admin_client: Client, books: list[Any]) -> None:
    waiting = books[:2]
    selected = {"action": "reject_selected", ACTION_CHECKBOX_NAME: reviews_of(waiting)}
    asked = admin_client.post(reverse(CHANGELIST), selected)
    assert asked.status_code == 200
    assert "Reason, shown to each family" in text_of(asked)
    assert "The Blue Door" in text_of(asked) and "Moon Picnic" in text_of(asked)

    blank = admin_client.post(reverse(CHANGELIST), {**selected, "reason_given": "yes", "reason": "  "})
    assert blank.status_code == 400
    assert "Give the reason these books cannot be shared." in text_of(blank)
    assert not Decision.objects.filter(outcome=Outcome.REJECTED).exists()
    assert set(BookReview.objects.filter(book__in=waiting).values_list("state", flat=True)) == {"submitted"}

    done = admin_client.post(
        reverse(CHANGELIST),
        {**selected, "reason_given": "yes", "reason": "Real names and a school."},
        follow=True,
    )
    assert "2 books decided." in text_of(done)
    rejected = Decision.objects.filter(outcome=Outcome.REJECTED)
    assert sorted(d.review.book.title for d in rejected) == ["Moon Picnic", "The Blue Door"]
    assert {(d.reviewer.username, d.note, d.via_admin) for d in rejected} == {
        ("root", "Real names and a school.", True)
    }
    assert BookReview.objects.get(book=books[2]).state == SharingState.SUBMITTED  # not selected


def test_staff_without_the_reviewer_permission_get_no_decision_actions(books: list[Any]) -> None:
    staff = client_for(make_staff("sam", "reviews.view_bookreview", "reviews.change_bookreview"))
    changelist = staff.get(reverse(CHANGELIST))
    assert changelist.status_code == 200
    assert "approve_selected" not in text_of(changelist)
    response = staff.post(
        reverse(CHANGELIST), {"action": "approve_selected", ACTION_CHECKBOX_NAME: reviews_of(books)}
    )
    assert response.status_code in (200, 302)
    assert Decision.objects.count() == 1  # only the approval made in the fixture
    assert BookReview.objects.filter(state=SharingState.SUBMITTED).count() == 3


def test_decisions_are_read_only_in_admin(admin_client: Client, books: list[Any]) -> None:
    decision = Decision.objects.get()
    listing = admin_client.get(reverse("admin:reviews_decision_changelist"), {"q": "Already"})
    assert listing.status_code == 200 and "Already Approved" in text_of(listing)
    filtered = admin_client.get(reverse("admin:reviews_decision_changelist"), {"outcome__exact": "rejected"})
    assert "Already Approved" not in text_of(filtered)
    assert admin_client.get(reverse("admin:reviews_decision_add")).status_code == 403
    change = admin_client.get(reverse("admin:reviews_decision_change", args=[decision.pk]))
    assert change.status_code == 200 and 'name="note"' not in text_of(change)
    admin_client.post(reverse("admin:reviews_decision_change", args=[decision.pk]), {"note": "edited"})
    assert admin_client.post(reverse("admin:reviews_decision_delete", args=[decision.pk])).status_code == 403
    decision.refresh_from_db()
    assert decision.note == ""
    review = BookReview.objects.get(book=books[3])
    review_page = text_of(admin_client.get(reverse("admin:reviews_bookreview_change", args=[review.pk])))
    assert 'name="state"' not in review_page and "rita" in review_page
