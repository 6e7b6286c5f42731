"""A finished book as a PDF to keep or print: a title page, then one page per book page.

Each book page is an A4 landscape sheet: its picture on the left, its words on the right,
shrunk until they fit, so a book of N pages is always N + 1 sheets. Pictures are read
from storage (local media or S3). The text is set in a Unicode TrueType font embedded
in the file (NanumGothic, from Debian's ``fonts-nanum``: Hangul and Latin in one face),
so a Korean book prints the same on any machine. The labels (title page, page numbers)
are in the book's own language: the PDF is a keepsake of the story, not of the screen.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import TYPE_CHECKING

from django.conf import settings
from django.utils import formats, translation
from django.utils.translation import gettext, ngettext, pgettext

from books import pictures
from books.models import Book, Page

if TYPE_CHECKING:
    from fpdf import FPDF

log = logging.getLogger(__name__)

FONT_FAMILY = "LittleWriter"
PAGE_WIDTH, PAGE_HEIGHT = 297.0, 210.0  # A4 landscape, millimetres
MARGIN = 14.0
PICTURE_SIZE = PAGE_HEIGHT - 2 * MARGIN
TEXT_X = MARGIN + PICTURE_SIZE + 12
TEXT_WIDTH = PAGE_WIDTH - TEXT_X - MARGIN
LARGEST_TEXT, SMALLEST_TEXT = 17.0, 7.0
INK = (59, 47, 47)
CORAL = (242, 121, 91)


class FontMissing(RuntimeError):
    """The TrueType font the PDF embeds is not installed."""


def font_files() -> tuple[Path, Path]:
    """The regular and bold font files (``LW_PDF_FONT``, ``LW_PDF_BOLD_FONT``)."""
    regular, bold = Path(settings.LITTLEWRITER["PDF_FONT"]), Path(settings.LITTLEWRITER["PDF_BOLD_FONT"])
    for path in (regular, bold):
        if not path.is_file():
            raise FontMissing(
                f"The PDF font {path} is missing: install fonts-nanum (scripts/bootstrap does)."
            )
    return regular, bold


def book_pdf(book: Book) -> bytes:
    """The whole book as PDF bytes; labels in the book's language."""
    # fpdf2 (with fontTools) takes over half a second to import: only a download pays for it,
    # not every server start or first request.
    from fpdf import FPDF

    regular, bold = font_files()
    pages = list(book.pages.order_by("number"))
    pdf = FPDF(orientation="landscape", unit="mm", format="A4")
    pdf.set_auto_page_break(False)
    pdf.set_margins(MARGIN, MARGIN, MARGIN)
    pdf.add_font(FONT_FAMILY, "", str(regular))
    pdf.add_font(FONT_FAMILY, "B", str(bold))
    pdf.set_title(book.title)
    pdf.set_creator("LittleWriter")
    pdf.set_lang(book.language)
    with translation.override(book.language):
        _title_page(pdf, book, pages)
        for page in pages:
            _book_page(pdf, page)
    return bytes(pdf.output())


def _title_page(pdf: FPDF, book: Book, pages: list[Page]) -> None:
    pdf.add_page()
    names = [character.name for character in book.characters.all()]
    cover = next((page for page in pages if page.picture), None)
    top = MARGIN + 8
    if cover is not None and (picture := _picture_bytes(cover)) is not None:
        size = 92.0
        pdf.image(io.BytesIO(picture), x=(PAGE_WIDTH - size) / 2, y=top, w=size, h=size)
        top += size + 10
    pdf.set_text_color(*INK)
    pdf.set_font(FONT_FAMILY, "B", 30)
    pdf.set_xy(MARGIN, top)
    pdf.multi_cell(PAGE_WIDTH - 2 * MARGIN, 13, book.title, align="C")
    pdf.set_font(FONT_FAMILY, "", 14)
    pdf.set_x(MARGIN)
    if names:
        cast = gettext("With %(names)s") % {"names": _joined(names)}
        pdf.multi_cell(PAGE_WIDTH - 2 * MARGIN, 8, cast, align="C")
    made_on = formats.date_format(book.created_at, pgettext("date format of a book", "j F Y"))
    page_total = ngettext("%(total)s page", "%(total)s pages", len(pages)) % {"total": len(pages)}
    pdf.set_text_color(*CORAL)
    pdf.set_x(MARGIN)
    pdf.multi_cell(PAGE_WIDTH - 2 * MARGIN, 8, f"{page_total} · {made_on} · LittleWriter", align="C")


def _joined(names: list[str]) -> str:
    if len(names) == 1:
        return names[0]
    between = pgettext("between names", ", ")
    last = pgettext("between the last two names", " and ")
    return between.join(names[:-1]) + last + names[-1]


def _book_page(pdf: FPDF, page: Page) -> None:
    pdf.add_page()
    picture = _picture_bytes(page) if page.picture else None
    if picture is not None:
        pdf.image(io.BytesIO(picture), x=MARGIN, y=MARGIN, w=PICTURE_SIZE, h=PICTURE_SIZE)
    pdf.set_text_color(*CORAL)
    pdf.set_font(FONT_FAMILY, "B", 11)
    pdf.set_xy(TEXT_X, MARGIN)
    pdf.cell(TEXT_WIDTH, 8, gettext("Page %(number)s") % {"number": page.number})
    words = page.text if not page.question else f"{page.text}\n\n{page.question}"
    size = _fitting_size(pdf, words, height=PAGE_HEIGHT - 2 * MARGIN - 12)
    pdf.set_text_color(*INK)
    pdf.set_font(FONT_FAMILY, "", size)
    pdf.set_xy(TEXT_X, MARGIN + 12)
    pdf.multi_cell(TEXT_WIDTH, size * 0.55, words, align="L")


def _fitting_size(pdf: FPDF, words: str, *, height: float) -> float:
    """The largest font size at which the words fit beside the picture (so one sheet per page)."""
    size = LARGEST_TEXT
    while size > SMALLEST_TEXT:
        pdf.set_font(FONT_FAMILY, "", size)
        lines = pdf.multi_cell(TEXT_WIDTH, size * 0.55, words, dry_run=True, output="LINES")
        assert isinstance(lines, list)
        if len(lines) * size * 0.55 <= height:
            return size
        size -= 0.5
    return SMALLEST_TEXT


def _picture_bytes(page: Page) -> bytes | None:
    """The page's picture from storage; a missing picture leaves its place empty, never a failed PDF."""
    try:
        with pictures.storage().open(str(page.picture.name), "rb") as handle:
            data: bytes = handle.read()
            return data
    except (FileNotFoundError, OSError):
        log.warning("picture %s of book %s is missing from storage", page.picture.name, page.book_id)
        return None
