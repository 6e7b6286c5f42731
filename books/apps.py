from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BooksConfig(AppConfig):
    name = "books"
    verbose_name = _("Books")

    def ready(self) -> None:
        from django.utils.translation import gettext

        from books import domain
        from books.ports import load_adapters

        # The domain's sentences are marked English; shown to people, they go through gettext.
        domain.set_translator(gettext)
        load_adapters()
