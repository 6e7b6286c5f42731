"""Let a user review books: put them in the "Reviewers" group (or take them out)."""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from reviews import services
from reviews.models import REVIEWERS_GROUP


class Command(BaseCommand):
    help = f'Give a user the reviewer permission by adding them to the "{REVIEWERS_GROUP}" group.'

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", help="The account that will review books (it must exist).")
        parser.add_argument(
            "--remove", action="store_true", help="Take the user out of the group: they stop reviewing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        username: str = options["username"]
        try:
            user = get_user_model().objects.get(username=username)
        except get_user_model().DoesNotExist as missing:
            raise CommandError(
                f"There is no user named {username!r}. Create the account first (sign up on the site,"
                " or manage.py createsuperuser), then run this command again."
            ) from missing
        if options["remove"]:
            removed = services.stop_reviewing(user=user)
            self.stdout.write(
                f"{username} no longer reviews books." if removed else f"{username} was not a reviewer."
            )
            return
        added = services.make_reviewer(user=user)
        if added:
            self.stdout.write(f"{username} is now a reviewer: the review queue is at /review/.")
        else:
            self.stdout.write(f"{username} was already a reviewer.")
        if not user.is_active:
            self.stdout.write(self.style.WARNING(f"{username}'s account is inactive: they cannot log in."))
