"""Review and sharing pages through Django's test client, as each kind of person meets them.

Who is who: ``ada`` owns the book, ``ben`` is another parent, ``sam`` is staff without the
reviewer permission (he may use admin), ``rita`` is a reviewer; and anyone, signed out.
"""

from __future__ import annotations

import html
import re
import secrets
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from reviews import services
from reviews.models import BookReview, Decision, Outcome, ShareLink, SharingState
from tests.reviewing import PNG_SIGNATURE, client_for, fetch_picture, finished_book, make_reviewer, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(parent: Any) -> Any:
    return finished_book(parent, "Mina and the Blue Door")


@pytest.fixture
def reviewer(db: None) -> Any:
    return make_reviewer("rita")


@pytest.fixture
def reviewer_client(reviewer: Any) -> Client:
    return client_for(reviewer)


@pytest.fixture
def staff_client(db: None) -> Client:
    # Staff who may look at reviews in admin, but were never made reviewers.
    return client_for(
        make_staff("sam", "reviews.view_bookreview", "reviews.view_decision", "books.view_book")
    )


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


def state_of(book: Any) -> str:
    review = BookReview.objects.filter(book=book).first()
    return review.state if review else SharingState.PRIVATE


def submitted(book: Any, note: str = "") -> Any:
    return services.submit_for_review(book=book, by=book.owner, note=note)


def approved(book: Any, reviewer: Any) -> Any:
    submitted(book)
    return services.approve(book=book, reviewer=reviewer)


def share_link_on_page(response: Any) -> str:
    found = re.search(r'id="share-link" value="([^"]+)"', response.content.decode())
    assert found, "the page shows no share link"
    return found.group(1)


# -- the family's sharing page ------------------------------------------------------------------------


def test_the_reader_and_the_shelf_show_the_sharing_state(parent_client: Client, book: Any) -> None:
    cover = text_of(parent_client.get(reverse("books:read", args=[book.pk])))
    assert "Private to your family" in cover
    assert reverse("reviews:sharing", args=[book.pk]) in cover
    submitted(book)
    shelf = text_of(parent_client.get(reverse("books:mine")))
    sharing_url = reverse("reviews:sharing", args=[book.pk])
    assert f'class="sharing-badge sharing-submitted" href="{sharing_url}">Waiting for review' in shelf


def test_the_family_submits_its_book_with_a_note(parent_client: Client, book: Any) -> None:
    page = parent_client.get(reverse("reviews:sharing", args=[book.pk]))
    assert page.status_code == 200
    assert "Only your family can see this book" in text_of(page)
    response = parent_client.post(
        reverse("reviews:submit", args=[book.pk]), {"note": "For Grandma in Busan."}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("reviews:sharing", args=[book.pk])
    assert state_of(book) == SharingState.SUBMITTED
    after = text_of(parent_client.get(response["Location"]))
    assert "Waiting for review" in after and "For Grandma in Busan." in after


def test_a_note_that_is_too_long_comes_back_with_the_error(parent_client: Client, book: Any) -> None:
    response = parent_client.post(reverse("reviews:submit", args=[book.pk]), {"note": "x" * 1001})
    assert response.status_code == 400
    assert "Ensure this value has at most 1000 characters" in text_of(response)
    assert state_of(book) == SharingState.PRIVATE


def test_submitting_twice_says_why_with_a_409(parent_client: Client, book: Any) -> None:
    submitted(book)
    response = parent_client.post(reverse("reviews:submit", args=[book.pk]), {"note": ""})
    assert response.status_code == 409
    assert "This book is already waiting for a reviewer." in text_of(response)


def test_a_sent_back_book_shows_the_note_and_can_be_submitted_again(
    parent_client: Client, book: Any, reviewer: Any
) -> None:
    submitted(book)
    services.send_back(book=book, reviewer=reviewer, note="Please leave out the school's name on page 1.")
    page = text_of(parent_client.get(reverse("reviews:sharing", args=[book.pk])))
    assert "Sent back" in page and "Please leave out the school's name on page 1." in page
    assert "Ask for a review again" in page
    response = parent_client.post(reverse("reviews:submit", args=[book.pk]), {"note": "Done."})
    assert response.status_code == 302
    assert state_of(book) == SharingState.SUBMITTED


def test_a_rejected_book_shows_the_reason_and_says_it_cannot_be_shared(
    parent_client: Client, book: Any, reviewer: Any
) -> None:
    submitted(book)
    services.reject(book=book, reviewer=reviewer, reason="It shows a real home address.")
    page = text_of(parent_client.get(reverse("reviews:sharing", args=[book.pk])))
    assert "Not accepted for sharing" in page and "It shows a real home address." in page
    assert "cannot be shared or submitted again" in page
    assert "Ask for a review" not in page and "Make a share link" not in page
    again = parent_client.post(reverse("reviews:submit", args=[book.pk]))
    assert again.status_code == 409 and "cannot be submitted again" in text_of(again)
    link = parent_client.post(reverse("reviews:create_link", args=[book.pk]))
    assert link.status_code == 409 and "cannot be shared" in text_of(link)
    assert not ShareLink.objects.exists()


def test_only_an_approved_book_gets_a_link(parent_client: Client, book: Any) -> None:
    response = parent_client.post(reverse("reviews:create_link", args=[book.pk]))
    assert response.status_code == 409
    assert "Only a book approved by a reviewer can be shared" in text_of(response)
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize("who", ["anonymous", "other parent"])
def test_nobody_else_touches_the_familys_sharing(
    who: str, book: Any, reviewer: Any, other_client: Client
) -> None:
    approved(book, reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    client = Client() if who == "anonymous" else other_client
    urls = [
        ("get", reverse("reviews:sharing", args=[book.pk])),
        ("post", reverse("reviews:submit", args=[book.pk])),
        ("post", reverse("reviews:create_link", args=[book.pk])),
        ("post", reverse("reviews:revoke_link", args=[book.pk])),
    ]
    for method, url in urls:
        response = getattr(client, method)(url)
        if who == "anonymous":
            assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
        else:
            assert response.status_code == 404, url
    assert ShareLink.objects.get().revoked_at is None
    assert Client().get(reverse("reviews:shared", args=[token])).status_code == 200


# -- share links ---------------------------------------------------------------------------------------


def test_a_share_link_opens_the_book_and_its_pictures_without_logging_in(
    parent_client: Client, book: Any, reviewer: Any
) -> None:
    approved(book, reviewer)
    made = parent_client.post(reverse("reviews:create_link", args=[book.pk]))
    assert made.status_code == 201
    assert made["Cache-Control"] == "no-store"
    link = share_link_on_page(made)
    assert link.startswith("http://testserver/shared/")
    path = link.removeprefix("http://testserver")

    visitor = Client()
    cover = visitor.get(path)
    assert cover.status_code == 200
    assert cover["Referrer-Policy"] == "no-referrer"
    assert "noindex" in cover["X-Robots-Tag"]
    assert "Mina and the Blue Door" in text_of(cover)
    assert "Log in" in text_of(cover)  # nobody is signed in
    for page in book.pages.order_by("number"):
        reading = text_of(visitor.get(path, {"page": page.number}))
        assert page.text in reading
        picture_url = f"{path}pages/{page.number}/picture"
        assert picture_url in reading
        assert fetch_picture(visitor, picture_url).startswith(PNG_SIGNATURE)
    # Read-only: nothing on the page changes the book or reaches the family's own pages.
    assert "<form" not in text_of(visitor.get(path, {"page": 1})).split('class="reader')[1]
    assert reverse("books:book_picture", args=[book.pk, 1]) not in text_of(visitor.get(path, {"page": 1}))


def test_the_pictures_are_not_reachable_without_the_link(
    book: Any, reviewer: Any, other_client: Client
) -> None:
    approved(book, reviewer)
    services.create_share_link(book=book, by=book.owner)
    visitor = Client()
    assert visitor.get(reverse("books:book_picture", args=[book.pk, 1])).status_code == 302  # to log in
    assert other_client.get(reverse("books:book_picture", args=[book.pk, 1])).status_code == 404
    assert other_client.get(reverse("reviews:picture", args=[book.pk, 1])).status_code == 403
    guessed = secrets.token_urlsafe(32)
    assert visitor.get(reverse("reviews:shared_picture", args=[guessed, 1])).status_code == 404


def test_a_revoked_link_is_not_found_and_a_new_one_works(
    parent_client: Client, book: Any, reviewer: Any
) -> None:
    approved(book, reviewer)
    first = share_link_on_page(parent_client.post(reverse("reviews:create_link", args=[book.pk])))
    second = share_link_on_page(parent_client.post(reverse("reviews:create_link", args=[book.pk])))
    visitor = Client()
    assert visitor.get(first).status_code == 404
    assert visitor.get(second).status_code == 200
    page = text_of(parent_client.get(reverse("reviews:sharing", args=[book.pk])))
    assert "is on" in page and second not in page  # the link itself is shown only once

    response = parent_client.post(reverse("reviews:revoke_link", args=[book.pk]))
    assert response.status_code == 302
    revoked = visitor.get(second)
    assert revoked.status_code == 404
    assert "This link does not open a book" in text_of(revoked) and book.title not in text_of(revoked)
    assert visitor.get(f"{second}pages/1/picture").status_code == 404
    assert "There is no share link yet." in text_of(
        parent_client.get(reverse("reviews:sharing", args=[book.pk]))
    )


def test_a_guessed_link_is_not_found(book: Any, reviewer: Any) -> None:
    approved(book, reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    visitor = Client()
    for guess in (
        secrets.token_urlsafe(32),
        token[:-2],
        token + "x",
        str(book.pk),
        services.token_digest(token),
    ):
        assert visitor.get(reverse("reviews:shared", args=[guess])).status_code == 404, guess
        assert visitor.get(reverse("reviews:shared_picture", args=[guess, 1])).status_code == 404, guess


def test_a_link_stops_working_when_the_approval_is_withdrawn(
    book: Any, reviewer: Any, reviewer_client: Client
) -> None:
    approved(book, reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    visitor = Client()
    assert visitor.get(reverse("reviews:shared", args=[token])).status_code == 200
    response = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "withdraw"]), {"withdrawn-note": "A parent reported page 2."}
    )
    assert response.status_code == 302
    assert visitor.get(reverse("reviews:shared", args=[token])).status_code == 404
    assert visitor.get(reverse("reviews:shared_picture", args=[token, 1])).status_code == 404
    assert state_of(book) == SharingState.SENT_BACK


# -- reviewers -----------------------------------------------------------------------------------------


def review_urls(book: Any) -> list[tuple[str, str, dict[str, str]]]:
    """Every review page and action, with data that a reviewer's request would carry."""
    return [
        ("get", reverse("reviews:queue"), {}),
        ("get", reverse("reviews:review", args=[book.pk]), {}),
        ("get", reverse("reviews:picture", args=[book.pk, 1]), {}),
        ("post", reverse("reviews:decide", args=[book.pk, "approve"]), {"approved-note": ""}),
        ("post", reverse("reviews:decide", args=[book.pk, "send-back"]), {"sent_back-note": "Change it."}),
        ("post", reverse("reviews:decide", args=[book.pk, "reject"]), {"rejected-note": "No."}),
        ("post", reverse("reviews:decide", args=[book.pk, "withdraw"]), {"withdrawn-note": "No."}),
    ]


@pytest.mark.parametrize("who", ["anonymous", "owner", "other parent", "staff without the permission"])
def test_no_one_but_a_reviewer_gets_into_review(
    who: str, book: Any, parent_client: Client, other_client: Client, staff_client: Client
) -> None:
    submitted(book)
    client = {
        "anonymous": Client(),
        "owner": parent_client,
        "other parent": other_client,
        "staff without the permission": staff_client,
    }[who]
    for method, url, data in review_urls(book):
        response = getattr(client, method)(url, data)
        if who == "anonymous":
            assert response.status_code == 302 and response["Location"].startswith(reverse("login")), url
        else:
            assert response.status_code == 403, url
            assert "This page is for reviewers" in text_of(response)
            assert book.title not in text_of(response)
    assert state_of(book) == SharingState.SUBMITTED
    assert not Decision.objects.exists()
    if who != "anonymous":
        assert 'href="/review/"' not in text_of(client.get(reverse("home")))


def test_the_queue_lists_waiting_books_oldest_first_with_their_counts(
    reviewer_client: Client, parent: Any, other_parent: Any
) -> None:
    older = finished_book(parent, "The Older Book", page_count=3)
    newer = finished_book(other_parent, "The Newer Book", page_count=2)
    private = finished_book(parent, "A Private Book")
    submitted(older, note="For the class.")
    submitted(newer)
    response = reviewer_client.get(reverse("reviews:queue"))
    assert response.status_code == 200
    page = text_of(response)
    assert page.index("The Older Book") < page.index("The Newer Book")
    assert private.title not in page
    row = re.search(rf'<tr data-book="{older.pk}">(.*?)</tr>', page, flags=re.S)
    assert row is not None
    assert '<td class="count-pages">3</td>' in row.group(1)
    assert '<td class="count-inputs">2</td>' in row.group(1)  # the last page was the parent's own words
    assert "For the class." in row.group(1) and "ada" in row.group(1)
    assert 'href="/review/"' in text_of(reviewer_client.get(reverse("home")))


def test_the_review_page_shows_the_whole_book_its_pictures_and_no_flags_when_none_were_recorded(
    reviewer_client: Client, book: Any
) -> None:
    submitted(book, note="For Grandma.")
    response = reviewer_client.get(reverse("reviews:review", args=[book.pk]))
    assert response.status_code == 200
    page = text_of(response)
    assert "For Grandma." in page and "Waiting for review" in page
    for item in book.pages.all():
        assert item.text in page
        picture_url = reverse("reviews:picture", args=[book.pk, item.number])
        assert f'src="{picture_url}"' in page
        assert fetch_picture(reviewer_client, picture_url).startswith(PNG_SIGNATURE)
    assert "The child said: “idea number 1”" in page
    assert "Written by the parent." in page
    assert 'id="moderation-flags"' in page and "No moderation flags were recorded for this book." in page
    for form in ("approve-form", "send-back-form", "reject-form"):
        assert f'id="{form}"' in page


def test_the_review_page_lists_the_books_moderation_flags(reviewer_client: Client, book: Any) -> None:
    from books.ports import Verdict
    from safety.models import FlagSource
    from safety.services import record_flag

    record_flag(
        user_id=book.owner_id,
        child_id=book.child_id,
        draft_id=book.draft_id,
        source=FlagSource.CHILD_IDEA,
        text="the dragon bites everyone",
        verdict=Verdict(flagged=True, categories=("violence",), reason="bites"),
        moderator_name="offline",
        page_number=2,
    )
    submitted(book, note="For Grandma.")

    page = text_of(reviewer_client.get(reverse("reviews:review", args=[book.pk])))
    flags = re.search(r'id="moderation-flags"(.*?)</section>', page, flags=re.S)
    assert flags is not None
    assert "the dragon bites everyone" in flags.group(1) and "violence" in flags.group(1)
    assert "page 2" in flags.group(1)
    assert "No moderation flags were recorded" not in flags.group(1)


def test_a_private_book_is_not_found_even_by_a_reviewer(reviewer_client: Client, book: Any) -> None:
    assert reviewer_client.get(reverse("reviews:review", args=[book.pk])).status_code == 404
    assert reviewer_client.get(reverse("reviews:picture", args=[book.pk, 1])).status_code == 404
    response = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "approve"]), {"approved-note": ""}
    )
    assert response.status_code == 404
    assert reviewer_client.get(reverse("books:read", args=[book.pk])).status_code == 404
    assert not BookReview.objects.exists()


def test_a_reviewer_approves_and_the_decision_is_kept(
    reviewer_client: Client, reviewer: Any, book: Any, parent_client: Client
) -> None:
    submitted(book)
    response = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "approve"]), {"approved-note": "A lovely story."}
    )
    assert response.status_code == 302 and response["Location"] == reverse("reviews:queue")
    assert state_of(book) == SharingState.APPROVED
    decision = Decision.objects.get()
    assert (decision.reviewer, decision.outcome, decision.note) == (
        reviewer,
        Outcome.APPROVED,
        "A lovely story.",
    )
    queue = text_of(reviewer_client.get(response["Location"]))
    assert "is approved" in queue and "Recently decided" in queue
    family = text_of(parent_client.get(reverse("reviews:sharing", args=[book.pk])))
    assert "Approved for sharing" in family and "A lovely story." in family and "Make a share link" in family


@pytest.mark.parametrize(
    ("decision", "field", "message"),
    [
        ("send-back", "sent_back-note", "Write a note for the family"),
        ("reject", "rejected-note", "Give the reason this book cannot be shared."),
    ],
)
def test_sending_back_or_rejecting_without_a_note_shows_the_form_again(
    reviewer_client: Client, book: Any, decision: str, field: str, message: str
) -> None:
    submitted(book)
    response = reviewer_client.post(reverse("reviews:decide", args=[book.pk, decision]), {field: "   "})
    assert response.status_code == 400
    page = text_of(response)
    assert message in page
    assert book.pages.get(number=1).text in page  # the whole book is still there to read
    assert state_of(book) == SharingState.SUBMITTED
    assert not Decision.objects.exists()


def test_sending_back_and_rejecting_record_the_note(
    reviewer_client: Client, reviewer: Any, book: Any
) -> None:
    submitted(book)
    back = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "send-back"]), {"sent_back-note": "Change page 2."}
    )
    assert back.status_code == 302 and state_of(book) == SharingState.SENT_BACK
    submitted(book)
    rejected = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "reject"]), {"rejected-note": "Not for sharing."}
    )
    assert rejected.status_code == 302 and state_of(book) == SharingState.REJECTED
    assert list(Decision.objects.order_by("id").values_list("outcome", "note", "reviewer")) == [
        (Outcome.SENT_BACK, "Change page 2.", reviewer.pk),
        (Outcome.REJECTED, "Not for sharing.", reviewer.pk),
    ]


def test_deciding_twice_answers_409_with_a_sentence(reviewer_client: Client, book: Any) -> None:
    submitted(book)
    url = reverse("reviews:decide", args=[book.pk, "approve"])
    assert reviewer_client.post(url, {"approved-note": ""}).status_code == 302
    again = reviewer_client.post(url, {"approved-note": ""})
    assert again.status_code == 409
    assert "This book was already approved; there is nothing left to decide." in text_of(again)
    reject = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "reject"]), {"rejected-note": "No."}
    )
    assert reject.status_code == 409
    assert Decision.objects.count() == 1 and state_of(book) == SharingState.APPROVED


def test_deciding_a_book_that_is_not_waiting_answers_409(
    reviewer_client: Client, reviewer: Any, book: Any
) -> None:
    submitted(book)
    services.send_back(book=book, reviewer=reviewer, note="Change page 2.")
    response = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "approve"]), {"approved-note": ""}
    )
    assert response.status_code == 409
    assert "sent back to its family and has not been submitted again" in text_of(response)
    withdraw = reviewer_client.post(
        reverse("reviews:decide", args=[book.pk, "withdraw"]), {"withdrawn-note": "x"}
    )
    assert withdraw.status_code == 409 and "Only an approved book" in text_of(withdraw)
    assert Decision.objects.count() == 1


def test_an_unknown_decision_is_not_found(reviewer_client: Client, book: Any) -> None:
    submitted(book)
    response = reviewer_client.post(reverse("reviews:decide", args=[book.pk, "publish"]), {})
    assert response.status_code == 404
    assert state_of(book) == SharingState.SUBMITTED


def test_a_reviewer_does_not_decide_on_their_own_book(reviewer_client: Client, reviewer: Any) -> None:
    own = finished_book(reviewer, "Rita's Book")
    submitted(own)
    page = text_of(reviewer_client.get(reverse("reviews:review", args=[own.pk])))
    assert "another reviewer decides on it" in page and 'id="approve-form"' not in page
    response = reviewer_client.post(
        reverse("reviews:decide", args=[own.pk, "approve"]), {"approved-note": ""}
    )
    assert response.status_code == 409
    assert state_of(own) == SharingState.SUBMITTED


def test_reading_a_decision_request_needs_post(reviewer_client: Client, book: Any) -> None:
    submitted(book)
    assert reviewer_client.get(reverse("reviews:decide", args=[book.pk, "approve"])).status_code == 405
    assert state_of(book) == SharingState.SUBMITTED


# -- numbers no database row can have ---------------------------------------------------------------

# 2**63 is one past the largest integer SQLite and PostgreSQL compare with; the longer one was made up.
BEYOND_THE_DATABASE = [str(2**63), "9" * 25]


@pytest.mark.parametrize("huge", BEYOND_THE_DATABASE)
@pytest.mark.parametrize(
    ("who", "method", "path"),
    [
        ("reviewer", "get", "/review/{huge}/"),
        ("reviewer", "get", "/review/{huge}/pages/1/picture"),
        ("reviewer", "get", "/review/{book}/pages/{huge}/picture"),
        ("reviewer", "post", "/review/{huge}/approve"),
        ("owner", "get", "/{huge}/sharing/"),
        ("owner", "post", "/{huge}/sharing/submit"),
        ("owner", "post", "/{huge}/sharing/link"),
        ("owner", "post", "/{huge}/sharing/link/revoke"),
        ("anonymous", "get", "/shared/{token}/pages/{huge}/picture"),
    ],
)
def test_a_number_beyond_what_the_database_holds_is_a_friendly_404(
    book: Any, reviewer: Any, who: str, method: str, path: str, huge: str
) -> None:
    approved(book, reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    client = client_for({"reviewer": reviewer, "owner": book.owner, "anonymous": None}[who])
    response = getattr(client, method)(path.format(huge=huge, book=book.pk, token=token), {"note": "x"})
    assert response.status_code == 404
    assert "We couldn't find that" in text_of(response)
    assert state_of(book) == SharingState.APPROVED
    assert ShareLink.objects.filter(book=book, revoked_at__isnull=True).count() == 1
