"""Sentences that tell a parent what making their book used."""

from __future__ import annotations

from django import template
from django.utils.formats import number_format
from django.utils.translation import gettext, ngettext

from usage.selectors import BookUsage, Used

register = template.Library()


def _figures(used: Used) -> dict[str, str]:
    tokens = ngettext("%(count)s token", "%(count)s tokens", used.tokens) % {
        "count": number_format(used.tokens, force_grouping=True)
    }
    pictures = ngettext("%(count)s picture", "%(count)s pictures", used.pictures) % {
        "count": number_format(used.pictures, force_grouping=True)
    }
    return {"tokens": tokens, "pictures": pictures}


@register.simple_tag
def book_usage_sentence(usage: object, *, in_progress: bool = False) -> str:
    # Pages that show a book without its usage (a share link, the review) leave ``usage`` unset.
    if not isinstance(usage, BookUsage):
        return ""
    if in_progress:
        return gettext("So far this book used %(tokens)s and %(pictures)s.") % _figures(usage.total)
    return gettext("This book used %(tokens)s and %(pictures)s.") % _figures(usage.total)


@register.simple_tag
def page_usage_sentence(usage: object, number: int) -> str:
    if not isinstance(usage, BookUsage) or not usage.page(number):
        return ""
    return gettext("This page used %(tokens)s and %(pictures)s.") % _figures(usage.page(number))
