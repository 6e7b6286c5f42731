from __future__ import annotations

from django.apps import AppConfig


class BooksConfig(AppConfig):
    name = "books"
    verbose_name = "Books"

    def ready(self) -> None:
        from books.ports import load_adapters

        load_adapters()
