"""The named people every test module shares: parents, each with a child unless told otherwise."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

PASSWORD = "a-long-family-password-42"
CHILD_NICKNAME = "Sunny"


def make_parent(
    username: str, *, child: str | None = CHILD_NICKNAME, age_band: str = "6-8"
) -> AbstractBaseUser:
    """A parent; with one child (``child=None`` for a parent who has not added one yet)."""
    from families.models import Child

    user: AbstractBaseUser = get_user_model().objects.create_user(username=username, password=PASSWORD)
    if child:
        Child.objects.create(parent_id=user.pk, nickname=child, age_band=age_band)
    return user


def first_child(user: Any) -> Any:
    from families.models import Child

    child = Child.objects.filter(parent=user).order_by("created_at", "id").first()
    assert child is not None, f"{user} has no child; make_parent() gives one unless told otherwise"
    return child


def start_book_with_child(user: Any, **book: Any) -> Any:
    """``services.start_book`` with the parent's first child, for tests that are not about children."""
    from books import services

    return services.start_book(user_id=user.pk, child_id=first_child(user).pk, **book)
