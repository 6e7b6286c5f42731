"""Install the bucket rule that expires draft pictures (``drafts/``)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from books import pictures


class Command(BaseCommand):
    help = "Make the S3 bucket delete pictures under drafts/ once no draft can still show them."

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            rule = pictures.install_drafts_lifecycle_rule()
        except RuntimeError as error:
            raise CommandError(str(error)) from error
        days = pictures.draft_picture_days()
        message = f"Rule {rule['ID']!r}: {pictures.DRAFTS_PREFIX} expires after {days} day(s)."
        self.stdout.write(self.style.SUCCESS(message))
