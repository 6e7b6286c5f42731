"""Review and sharing use cases on the real database: every transition and every refused move."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable
from typing import Any

import pytest
from django.apps import apps as django_apps
from django.contrib.auth.models import Group, Permission
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import DatabaseError, connection
from django.http import Http404

from books.domain import IllegalMove
from reviews import selectors, services
from reviews.models import STATE_AFTER, BookReview, Decision, Outcome, ShareLink, SharingState
from reviews.services import NotAReviewer, NoteNeeded, NotTheirs
from tests.reviewing import finished_book, make_reviewer, make_staff

pytestmark = pytest.mark.django_db


@pytest.fixture
def book(parent: Any) -> Any:
    return finished_book(parent)


@pytest.fixture
def reviewer(db: None) -> Any:
    return make_reviewer("rita")


def state_of(book: Any) -> str:
    review = BookReview.objects.filter(book=book).first()
    return review.state if review else SharingState.PRIVATE


def submitted(book: Any, note: str = "") -> Any:
    return services.submit_for_review(book=book, by=book.owner, note=note)


# -- submitting ------------------------------------------------------------------------------------


def test_a_finished_book_is_private_until_its_family_submits_it(book: Any, parent: Any) -> None:
    assert state_of(book) == SharingState.PRIVATE
    assert selectors.sharing_of(book).state == SharingState.PRIVATE
    review = services.submit_for_review(book=book, by=parent, note="  For Grandma.  ")
    assert review.state == SharingState.SUBMITTED
    assert review.parent_note == "For Grandma."
    assert review.submitted_at is not None
    assert not Decision.objects.exists()


def test_submitting_twice_is_refused(book: Any) -> None:
    submitted(book)
    with pytest.raises(IllegalMove, match="already waiting for a reviewer") as refused:
        submitted(book)
    assert refused.value.status == 409


def test_another_family_cannot_submit_the_book(book: Any, other_parent: Any) -> None:
    with pytest.raises(NotTheirs) as refused:
        services.submit_for_review(book=book, by=other_parent)
    assert refused.value.status == 404
    assert state_of(book) == SharingState.PRIVATE


# -- deciding --------------------------------------------------------------------------------------


def test_approving_records_who_when_and_what(book: Any, reviewer: Any) -> None:
    submitted(book)
    decision = services.approve(book=book, reviewer=reviewer, note="Lovely pictures.")
    assert state_of(book) == SharingState.APPROVED
    stored = Decision.objects.get()
    assert stored == decision
    assert (stored.reviewer, stored.outcome, stored.note, stored.via_admin) == (
        reviewer,
        Outcome.APPROVED,
        "Lovely pictures.",
        False,
    )
    assert stored.decided_at is not None


def test_sending_back_needs_a_note_and_the_book_can_be_submitted_again(book: Any, reviewer: Any) -> None:
    submitted(book)
    with pytest.raises(NoteNeeded, match="Write a note for the family") as refused:
        services.send_back(book=book, reviewer=reviewer, note="   ")
    assert refused.value.status == 400
    assert state_of(book) == SharingState.SUBMITTED
    assert not Decision.objects.exists()

    services.send_back(book=book, reviewer=reviewer, note="Page 2 names a real school.")
    assert state_of(book) == SharingState.SENT_BACK
    sharing = selectors.sharing_of(book)
    assert sharing.can_submit and sharing.last_decision is not None
    assert sharing.last_decision.note == "Page 2 names a real school."

    submitted(book, note="We changed our mind about page 2.")
    assert state_of(book) == SharingState.SUBMITTED
    services.approve(book=book, reviewer=reviewer)
    assert [d.outcome for d in Decision.objects.order_by("decided_at", "id")] == [
        Outcome.SENT_BACK,
        Outcome.APPROVED,
    ]


def test_rejecting_needs_a_reason_and_a_rejected_book_is_never_shared(book: Any, reviewer: Any) -> None:
    submitted(book)
    with pytest.raises(NoteNeeded, match="reason"):
        services.reject(book=book, reviewer=reviewer, reason="")
    services.reject(book=book, reviewer=reviewer, reason="It shows a child's home address.")
    assert state_of(book) == SharingState.REJECTED
    with pytest.raises(IllegalMove, match="cannot be submitted again"):
        submitted(book)
    with pytest.raises(IllegalMove, match="cannot be shared"):
        services.create_share_link(book=book, by=book.owner)
    assert not ShareLink.objects.exists()


@pytest.mark.parametrize("first", ["approve", "send_back", "reject"])
@pytest.mark.parametrize("second", ["approve", "send_back", "reject"])
def test_deciding_twice_is_refused(book: Any, reviewer: Any, first: str, second: str) -> None:
    submitted(book)
    decide(first, book, reviewer)
    before = state_of(book)
    second_reviewer = make_reviewer("sol")
    with pytest.raises(IllegalMove) as refused:
        decide(second, book, second_reviewer)
    assert refused.value.status == 409
    assert "nothing left to decide" in str(refused.value) or "not been submitted again" in str(refused.value)
    assert state_of(book) == before
    assert Decision.objects.count() == 1


def test_deciding_a_book_that_was_never_submitted_is_refused(book: Any, reviewer: Any) -> None:
    with pytest.raises(IllegalMove, match="not submitted for review"):
        services.approve(book=book, reviewer=reviewer)
    assert not BookReview.objects.exists() and not Decision.objects.exists()


def test_staff_without_the_reviewer_permission_cannot_decide(book: Any) -> None:
    submitted(book)
    staff = make_staff("sam", "reviews.view_bookreview", "reviews.change_bookreview")
    with pytest.raises(NotAReviewer) as refused:
        services.approve(book=book, reviewer=staff)
    assert refused.value.status == 403
    assert state_of(book) == SharingState.SUBMITTED
    assert not Decision.objects.exists()


def test_a_reviewer_does_not_decide_on_their_own_book(reviewer: Any) -> None:
    own = finished_book(reviewer, "Rita's Own Book")
    submitted(own)
    with pytest.raises(IllegalMove, match="your own book"):
        services.approve(book=own, reviewer=reviewer)
    assert state_of(own) == SharingState.SUBMITTED


def test_a_failure_while_recording_the_decision_leaves_the_book_as_it_was(
    book: Any, reviewer: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    submitted(book)

    def broken_create(**fields: Any) -> None:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(Decision.objects, "create", broken_create)
    with pytest.raises(DatabaseError):
        services.approve(book=book, reviewer=reviewer)
    assert state_of(book) == SharingState.SUBMITTED


def decide(move: str, book: Any, reviewer: Any) -> Any:
    if move == "approve":
        return services.approve(book=book, reviewer=reviewer)
    if move == "send_back":
        return services.send_back(book=book, reviewer=reviewer, note="Please change page 1.")
    return services.reject(book=book, reviewer=reviewer, reason="Not for sharing.")


# -- sharing ---------------------------------------------------------------------------------------


def test_only_an_approved_book_gets_a_share_link(book: Any, reviewer: Any) -> None:
    with pytest.raises(IllegalMove, match="Ask for a review first"):
        services.create_share_link(book=book, by=book.owner)
    submitted(book)
    with pytest.raises(IllegalMove, match="still waiting for a reviewer"):
        services.create_share_link(book=book, by=book.owner)
    services.approve(book=book, reviewer=reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    assert len(token) >= 40
    assert selectors.shared_book(token) == book


def test_only_the_tokens_fingerprint_is_stored(book: Any, reviewer: Any) -> None:
    submitted(book)
    services.approve(book=book, reviewer=reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    link = ShareLink.objects.get()
    assert link.token_hash == services.token_digest(token) and token not in link.token_hash
    assert not ShareLink.objects.filter(token_hash=token).exists()


def test_another_family_cannot_make_or_revoke_the_link(book: Any, reviewer: Any, other_parent: Any) -> None:
    submitted(book)
    services.approve(book=book, reviewer=reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    with pytest.raises(NotTheirs):
        services.create_share_link(book=book, by=other_parent)
    with pytest.raises(NotTheirs):
        services.revoke_share_link(book=book, by=other_parent)
    assert selectors.shared_book(token) == book


def test_a_new_link_replaces_the_old_and_a_revoked_link_opens_nothing(book: Any, reviewer: Any) -> None:
    submitted(book)
    services.approve(book=book, reviewer=reviewer)
    first = services.create_share_link(book=book, by=book.owner)
    second = services.create_share_link(book=book, by=book.owner)
    assert first != second
    with pytest.raises(Http404):
        selectors.shared_book(first)
    assert selectors.shared_book(second) == book
    assert services.revoke_share_link(book=book, by=book.owner) == 1
    with pytest.raises(Http404):
        selectors.shared_book(second)
    with pytest.raises(Http404):
        selectors.shared_picture_name(second, 1)
    assert services.revoke_share_link(book=book, by=book.owner) == 0


def test_a_guessed_token_opens_nothing(book: Any, reviewer: Any) -> None:
    submitted(book)
    services.approve(book=book, reviewer=reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    for guess in (token[:-1], token.upper(), "a" * len(token), services.token_digest(token), ""):
        with pytest.raises(Http404):
            selectors.shared_book(guess)


def test_withdrawing_an_approval_closes_its_links_and_sends_the_book_back(book: Any, reviewer: Any) -> None:
    submitted(book)
    with pytest.raises(IllegalMove, match="Only an approved book"):
        services.withdraw_approval(book=book, reviewer=reviewer, reason="x")
    services.approve(book=book, reviewer=reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    with pytest.raises(NoteNeeded):
        services.withdraw_approval(book=book, reviewer=reviewer, reason=" ")
    services.withdraw_approval(book=book, reviewer=reviewer, reason="A parent reported page 2.")
    assert state_of(book) == SharingState.SENT_BACK
    with pytest.raises(Http404):
        selectors.shared_book(token)
    assert ShareLink.objects.get().revoked_at is not None
    assert Decision.objects.order_by("-id").first().outcome == Outcome.WITHDRAWN  # type: ignore[union-attr]
    # Approved again, the old link stays closed: the family makes a new one.
    submitted(book)
    services.approve(book=book, reviewer=reviewer)
    with pytest.raises(Http404):
        selectors.shared_book(token)


def test_a_link_stops_working_when_the_approval_is_gone_even_if_not_revoked(book: Any, reviewer: Any) -> None:
    submitted(book)
    services.approve(book=book, reviewer=reviewer)
    token = services.create_share_link(book=book, by=book.owner)
    # As if the state were changed outside the services (a database fix by hand).
    BookReview.objects.filter(book=book).update(state=SharingState.SENT_BACK)
    with pytest.raises(Http404):
        selectors.shared_book(token)


# -- who reviews -----------------------------------------------------------------------------------


def test_the_migration_makes_the_reviewers_group_with_the_permission(db: None) -> None:
    migration = importlib.import_module("reviews.migrations.0002_reviewers_group")
    Group.objects.filter(name="Reviewers").delete()
    Permission.objects.filter(codename="review_books").delete()
    migration.create_reviewers_group(django_apps, None)
    group = Group.objects.get(name="Reviewers")
    assert list(group.permissions.values_list("content_type__app_label", "codename")) == [
        ("reviews", "review_books")
    ]
    member = make_staff("sam")
    member.groups.add(group)
    assert services.is_reviewer(type(member).objects.get(pk=member.pk))


def test_make_reviewer_command_adds_the_user_to_the_group(
    parent: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    assert not services.is_reviewer(parent)
    call_command("make_reviewer", "ada")
    assert "ada is now a reviewer" in capsys.readouterr().out
    parent = type(parent).objects.get(pk=parent.pk)  # a fresh user: permissions are cached per object
    assert services.is_reviewer(parent)
    assert parent.groups.filter(name="Reviewers").exists()
    call_command("make_reviewer", "ada")
    assert "already a reviewer" in capsys.readouterr().out
    call_command("make_reviewer", "ada", "--remove")
    assert "no longer reviews" in capsys.readouterr().out
    assert not services.is_reviewer(type(parent).objects.get(pk=parent.pk))


def test_make_reviewer_explains_a_missing_user(db: None) -> None:
    with pytest.raises(CommandError, match=r"There is no user named 'nobody'\. Create the account first"):
        call_command("make_reviewer", "nobody")


@pytest.mark.django_db(transaction=True)
def test_two_reviewers_deciding_at_once_make_one_decision(parent: Any) -> None:
    """The row lock decides: whichever reviewer comes second is refused, and only one decision is kept."""
    if connection.vendor != "mysql":
        pytest.skip(
            "needs MySQL/MariaDB: the embedded test database (in-memory SQLite) fails a second writer"
            " at once instead of making it wait, so it cannot show the lock deciding"
        )
    book = finished_book(parent)
    submitted(book)
    first, second = make_reviewer("rita"), make_reviewer("sol")
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide_as(name: str, move: Callable[[], Any]) -> None:
        try:
            start.wait(timeout=30)
            move()
            outcomes[name] = "decided"
        except IllegalMove as refused:
            outcomes[name] = str(refused)
        finally:
            connection.close()  # this thread's own connection

    moves: dict[str, Callable[[], Any]] = {
        "rita": lambda: services.approve(book=book, reviewer=first),
        "sol": lambda: services.reject(book=book, reviewer=second, reason="Not for sharing."),
    }
    threads = [threading.Thread(target=decide_as, args=(name, move)) for name, move in moves.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(outcomes) == ["rita", "sol"]
    assert list(outcomes.values()).count("decided") == 1, outcomes
    assert any("nothing left to decide" in outcome for outcome in outcomes.values()), outcomes
    decision = Decision.objects.get()
    assert state_of(book) == STATE_AFTER[Outcome(decision.outcome)]
