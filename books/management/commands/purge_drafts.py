"""Delete old local draft pictures: the embedded twin of the bucket rule."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from books import pictures


class Command(BaseCommand):
    help = "Delete local draft pictures older than drafts can live (run it daily, e.g. from cron)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--hours",
            type=float,
            default=None,
            help="Age in hours past which to delete (default: the draft TTL).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            removed = pictures.purge_local_drafts(
                older_than_seconds=None if options["hours"] is None else options["hours"] * 3600
            )
        except RuntimeError as error:
            raise CommandError(str(error)) from error
        self.stdout.write(f"Removed {len(removed)} draft picture(s).")
