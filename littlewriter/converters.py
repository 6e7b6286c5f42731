"""URL parts for numbers the database compares with: a number no row can have is a 404 at once.

``<int:...>`` takes any length of digits; past 2**63 - 1 SQLite cannot even bind it in a
query (OverflowError, a 500), and a page number past a small integer cannot be stored in a
moderation flag on PostgreSQL. Refused here, such a URL gets the same friendly 404 as an id
that is simply not there, and no view or selector has to check.

Importing this module registers ``<id:...>`` (a row's id) and ``<page:...>`` (a page number).
"""

from __future__ import annotations

from django.urls import register_converter


class RowId:
    """A row's id: a positive 64-bit signed integer (SQLite's INTEGER, PostgreSQL's bigint)."""

    regex = "[0-9]{1,19}"
    largest = 2**63 - 1

    def to_python(self, value: str) -> int:
        number = int(value)
        if number > self.largest:
            raise ValueError(f"{value} is beyond any row's id")  # Django answers 404
        return number

    def to_url(self, value: int) -> str:
        if not 0 <= int(value) <= self.largest:
            raise ValueError(f"{value} is beyond any row's id")  # reverse() says NoReverseMatch
        return str(value)


class PageNumber(RowId):
    """A page number: kept as a small integer (a page, a moderation flag's page)."""

    regex = "[0-9]{1,5}"
    largest = 32767


register_converter(RowId, "id")
register_converter(PageNumber, "page")
