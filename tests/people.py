"""The named people every test module shares."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser

PASSWORD = "a-long-family-password-42"


def make_parent(username: str) -> AbstractBaseUser:
    user: AbstractBaseUser = get_user_model().objects.create_user(username=username, password=PASSWORD)
    return user
