"""Web pages for making and reading books: each view parses input, calls one service, renders.

Refused moves (``DomainError``) become a page with the error's sentence and its status
through ``shows_domain_errors``, so no view needs its own try/except for them. Making a
page is async: the storyteller is awaited without holding a worker thread.
"""

from __future__ import annotations

import mimetypes
import re
from collections.abc import Awaitable, Callable
from functools import wraps
from typing import Any

from asgiref.sync import iscoroutinefunction, sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import AnonymousUser, User
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    HttpResponseRedirect,
)
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.cache import patch_cache_control
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import get_language
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from django_htmx.middleware import HtmxDetails

from books import drafts, pdf, pictures, selectors, services
from books.domain import BookDraft, BookState, DomainError, Language, PageSource
from books.drafts import DraftExpired, DraftNotFound
from books.forms import (
    CHARACTER_ROWS_SHOWN,
    BaseCharacterFormSet,
    CharacterFormSet,
    ChildInputForm,
    FinishForm,
    NewBookForm,
    PageTextForm,
)
from families import selectors as family_selectors
from families.forms import ChildForm
from safety.services import InputHeldBack
from streaming.live import LiveSnapshot
from usage import selectors as usage_selectors
from usage.limits import GenerationLimited

View = Callable[..., Any]


class FamilyRequest(HttpRequest):
    """Typing only: a request behind ``login_required``, through django-htmx's middleware.

    The auth middleware sets ``user`` and ``auser`` on each request; past ``login_required``
    they are a real user, never the anonymous one.
    """

    user: User
    auser: Callable[[], Awaitable[User]]
    htmx: HtmxDetails


# Local pictures never change under the same URL (a new draft or book has a new id), but
# they are private: only the family's own browser may keep them.
PICTURE_MAX_AGE_SECONDS = 300
# A redirect must not outlive the presigned URL it points to (S3_URL_SECONDS, 5 minutes by default).
SIGNED_REDIRECT_MAX_AGE_SECONDS = 60


# -- refused moves -----------------------------------------------------------------------------


def domain_error_page(
    request: HttpRequest, error: DomainError, *, draft_id: str | None = None
) -> HttpResponse:
    """The error's sentence, its status, and the one link that helps next."""
    if isinstance(error, DraftExpired):
        back_url, back_label = reverse("books:new"), _("Start a new book")
    elif isinstance(error, DraftNotFound) or not draft_id:
        back_url, back_label = reverse("home"), _("Back home")
    else:
        back_url, back_label = reverse("books:draft", args=[draft_id]), _("Back to your book")
    context = {"message": str(error), "status": error.status, "back_url": back_url, "back_label": back_label}
    if _swaps_the_book(request):
        # A form on the making page asked and swaps #book: the sentence and its link go there.
        response = render(request, "error.html#in_the_book", context, status=error.status)
    elif getattr(request, "htmx", False) and isinstance(error, GenerationLimited):
        # A button on the live tabs (hx-swap="none") asked: the sentence goes into the notice there.
        response = render(request, "streaming/live.html#notice", {"notice": str(error)}, status=error.status)
    else:
        response = render(request, "error.html", context, status=error.status)
    return _with_retry_after(response, error)


def _with_retry_after(response: HttpResponse, error: DomainError) -> HttpResponse:
    if isinstance(error, GenerationLimited):
        response["Retry-After"] = str(error.retry_after)
    return response


def shows_domain_errors(view: View) -> View:
    """Turn a ``DomainError`` raised by a view into ``error.html`` with ``error.status`` — never a 500."""
    if iscoroutinefunction(view):

        @wraps(view)
        async def async_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            try:
                response: HttpResponse = await view(request, *args, **kwargs)
            except DomainError as error:
                # Rendering reads request.user (a sync database lookup), so it leaves the event loop.
                return await sync_to_async(domain_error_page)(request, error, draft_id=kwargs.get("draft_id"))
            return response

        return async_view

    @wraps(view)
    def sync_view(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            response: HttpResponse = view(request, *args, **kwargs)
        except DomainError as error:
            return domain_error_page(request, error, draft_id=kwargs.get("draft_id"))
        return response

    return sync_view


# -- home and starting a book ----------------------------------------------------------------


def home(request: HttpRequest) -> HttpResponse:
    user = request.user
    if isinstance(user, AnonymousUser):
        return render(request, "home.html")  # the visitor's page: what LittleWriter is
    context = {
        "draft": drafts.current(user.pk),
        "book_count": selectors.books_of(user).count(),
    }
    return render(request, "home.html", context)


@login_required
def new_book(request: FamilyRequest) -> HttpResponse:
    data = request.POST if request.method == "POST" else None
    children = family_selectors.children_of(request.user)
    if not children:
        # A book is made with a child: add one first (nothing typed yet, so nothing is lost).
        context = {"child_form": ChildForm(parent=request.user), "current_draft": None}
        return render(request, "books/new_book.html", context, status=200 if data is None else 400)
    # A new story starts in the interface's language; the family can pick the other one.
    initial = {"language": story_language_for(get_language())}
    book_form = NewBookForm(data, children=children, initial=initial)
    characters = CharacterFormSet(data, prefix="characters")
    if data is None:
        return _new_book_page(request, book_form, characters)
    if not (book_form.is_valid() and characters.is_valid()):
        return _new_book_page(request, book_form, characters, status=400)
    try:
        draft = services.start_book(
            user_id=request.user.pk,
            child_id=book_form.cleaned_data["child"].pk,
            characters=characters.characters(),
            page_count=book_form.cleaned_data["page_count"],
            language=book_form.cleaned_data["language"],
        )
    except DomainError as error:
        # Shown above the form, which keeps everything that was typed.
        return _new_book_page(request, book_form, characters, error=str(error), status=error.status)
    return redirect("books:draft", draft_id=draft.draft_id)


def story_language_for(interface_language: str | None) -> str:
    """The story language matching an interface language, English when there is none."""
    code = (interface_language or "").split("-")[0]
    return code if code in {language.value for language in Language} else Language.ENGLISH.value


def _new_book_page(
    request: FamilyRequest,
    book_form: NewBookForm,
    characters: BaseCharacterFormSet,
    *,
    error: str = "",
    status: int = 200,
) -> HttpResponse:
    more_rows = characters.forms[CHARACTER_ROWS_SHOWN:]
    context = {
        "book_form": book_form,
        "characters": characters,
        "first_rows": characters.forms[:CHARACTER_ROWS_SHOWN],
        "more_rows": more_rows,
        # Keep the extra rows open when something was typed there, so nothing looks lost.
        "more_open": any(form.is_bound and form.has_changed() for form in more_rows),
        "error": error,
        "current_draft": drafts.current(request.user.pk),
    }
    return render(request, "books/new_book.html", context, status=status)


# -- the making page ---------------------------------------------------------------------------


@login_required
@shows_domain_errors
def draft_page(request: FamilyRequest, draft_id: str) -> HttpResponse:
    draft, snapshot = services.live_page(user_id=request.user.pk, draft_id=draft_id)
    # htmx fetches the book again when a page drawn from a snapshot missed its run's end (the
    # socket sends it otherwise) and swaps in #book only: the rest of the page (header, menus)
    # is neither needed nor rendered, which was half of that request's work.
    return making_page(request, draft, snapshot=snapshot, only_the_book=_swaps_the_book(request))


def making_page(
    request: HttpRequest,
    draft: BookDraft,
    *,
    snapshot: LiveSnapshot | None = None,
    child_form: ChildInputForm | None = None,
    write_form: PageTextForm | None = None,
    refusal: str = "",
    status: int = 200,
    only_the_book: bool = False,
) -> HttpResponse:
    context = _making_context(
        draft, snapshot=snapshot, child_form=child_form, write_form=write_form, refusal=refusal
    )
    template = "books/making.html#book" if only_the_book else "books/making.html"
    return render(request, template, context, status=status)


def book_after_the_run(*, user_id: int, draft_id: str, live: LiveSnapshot) -> str:
    """The #book a page's socket sends when its run has ended, as the making page draws it.

    Sent in place of a fetch by the browser: the new page in the list, the next question and
    the child's box (or the words of a failed page back in it), drawn at the frame the socket
    has sent (``live``). There is no request, so its forms carry no CSRF field; htmx sends
    the token from <body>'s ``hx-headers``, as for every form a socket sends.
    """
    draft = drafts.load(user_id, draft_id, touch=False)  # the run has just saved it
    context = _making_context(draft, snapshot=live)
    return render_to_string("books/making.html#book", {**context, "book_oob": True})


def _making_context(
    draft: BookDraft,
    *,
    snapshot: LiveSnapshot | None = None,
    child_form: ChildInputForm | None = None,
    write_form: PageTextForm | None = None,
    refusal: str = "",
) -> dict[str, Any]:
    if child_form is None and write_form is None:
        child_form, write_form = _forms_keeping_failed_input(draft)
    # The parent's own-words form is open when it is what came back with a problem, or when
    # it holds their words of a page that failed.
    write_open = write_form is not None and (write_form.is_bound or bool(write_form.initial))
    return {
        "draft": draft,
        "child": _child_of(draft),
        "pages_made": len(draft.pages),
        "is_done": draft.state is BookState.DONE,
        "is_busy": draft.state is BookState.GENERATING,
        "next_number": draft.next_page_number,
        "child_form": child_form if child_form is not None else ChildInputForm(),
        "write_form": write_form if write_form is not None else PageTextForm(prefix="write"),
        "write_open": write_open,
        # The tabs of the page being made, or of the last one made (they stay readable).
        "live": snapshot if snapshot and snapshot.page_number >= len(draft.pages) else None,
        # The frame this page is drawn at: the socket catches up from there (see making.html).
        "live_seq": snapshot.seq if snapshot else 0,
        "language": draft.language.value,
        "refusal": refusal,
        "usage": usage_selectors.draft_usage(user_id=draft.owner_id, draft_id=draft.draft_id),
    }


def _child_of(draft: BookDraft) -> Any:
    if draft.child_id is None:
        return None
    return family_selectors.own_child(parent_id=draft.owner_id, child_id=draft.child_id)


def _forms_keeping_failed_input(draft: BookDraft) -> tuple[ChildInputForm, PageTextForm]:
    """After a failed page the draft still holds its input: put it back where it was typed."""
    if not (draft.last_error and draft.pending_input):
        return ChildInputForm(), PageTextForm(prefix="write")
    if draft.pending_source is PageSource.PARENT:
        words = {"text": draft.pending_input, "question": draft.pending_question}
        return ChildInputForm(), PageTextForm(prefix="write", initial=words)
    return ChildInputForm(initial={"child_input": draft.pending_input}), PageTextForm(prefix="write")


def _to_the_live_tabs(draft_id: str) -> HttpResponse:
    return HttpResponseRedirect(reverse("books:draft", args=[draft_id]) + "#live")


def _reload_making_page(request: HttpRequest, user_id: int, draft_id: str, **forms: Any) -> HttpResponse:
    """The making page again after a form was posted; only #book when htmx posted it (in place)."""
    draft, snapshot = services.live_page(user_id=user_id, draft_id=draft_id)
    return making_page(request, draft, snapshot=snapshot, only_the_book=_swaps_the_book(request), **forms)


def _swaps_the_book(request: HttpRequest) -> bool:
    htmx = getattr(request, "htmx", None)
    return bool(htmx and htmx.target == "book")


def _after_starting(request: HttpRequest, draft_id: str) -> HttpResponse:
    """The page is under way: a plain form goes to the live tabs; htmx is told to drop the form.

    The socket draws the tabs as the run starts, so the book is not rendered again here (that
    render was a fifth of a page's CPU, bench/README.md); the socket sends it when the run ends.
    """
    if _swaps_the_book(request):
        response = render(request, "books/making.html#started")
        response["HX-Reswap"] = "none"  # only the out-of-band parts: #book stays as it is
        return response
    return _to_the_live_tabs(draft_id)


@login_required
@require_POST
@shows_domain_errors
async def make_page(request: FamilyRequest, draft_id: str, number: int) -> HttpResponse:
    """The child said what happens next: start the page and show its tabs filling in."""
    user = await request.auser()
    form = ChildInputForm(request.POST)
    if not form.is_valid():
        return await sync_to_async(_reload_making_page)(
            request, user.pk, draft_id, child_form=form, status=400
        )
    try:
        await services.start_next_page(
            user_id=user.pk,
            draft_id=draft_id,
            page_number=number,
            child_input=form.cleaned_data["child_input"],
        )
    except GenerationLimited as limited:
        return await _refused_for_now(request, user.pk, draft_id, limited, child_form=form)
    except InputHeldBack as held_back:
        # The kind sentence goes under the box, which keeps what the child typed.
        form.add_error("child_input", str(held_back))
        return await sync_to_async(_reload_making_page)(
            request, user.pk, draft_id, child_form=form, status=held_back.status
        )
    return _after_starting(request, draft_id)


@login_required
@require_POST
@shows_domain_errors
async def write_page(request: FamilyRequest, draft_id: str, number: int) -> HttpResponse:
    """Write this page yourself: the parent's words (and question); only the picture is drawn."""
    user = await request.auser()
    form = PageTextForm(request.POST, prefix="write")
    if not form.is_valid():
        return await sync_to_async(_reload_making_page)(
            request, user.pk, draft_id, write_form=form, status=400
        )
    try:
        await services.start_own_page(
            user_id=user.pk,
            draft_id=draft_id,
            page_number=number,
            text=form.cleaned_data["text"],
            question=form.cleaned_data["question"],
        )
    except GenerationLimited as limited:
        return await _refused_for_now(request, user.pk, draft_id, limited, write_form=form)
    except InputHeldBack as held_back:
        form.add_error("text", str(held_back))
        return await sync_to_async(_reload_making_page)(
            request, user.pk, draft_id, write_form=form, status=held_back.status
        )
    return _after_starting(request, draft_id)


async def _refused_for_now(
    request: HttpRequest, user_id: int, draft_id: str, limited: GenerationLimited, **forms: Any
) -> HttpResponse:
    """A limit said "not now": the making page again, the words still in their box, and when to come back."""
    response = await sync_to_async(_reload_making_page)(
        request, user_id, draft_id, refusal=str(limited), status=limited.status, **forms
    )
    return _with_retry_after(response, limited)


@login_required
@require_POST
@shows_domain_errors
async def retry_sections(request: FamilyRequest, draft_id: str) -> HttpResponse:
    """Make the failed parts again; the tabs show them filling in over the socket."""
    user = await request.auser()
    sections = set(request.POST.getlist("section"))
    await services.retry_sections(user_id=user.pk, draft_id=draft_id, sections=sections)
    return HttpResponse(status=204) if request.htmx else _to_the_live_tabs(draft_id)


@login_required
@require_POST
@shows_domain_errors
async def stop_page(request: FamilyRequest, draft_id: str) -> HttpResponse:
    user = await request.auser()
    await services.stop_page(user_id=user.pk, draft_id=draft_id)
    return HttpResponse(status=204) if request.htmx else _to_the_live_tabs(draft_id)


LIVE_PICTURE_NAME = re.compile(r"^page-\d+-[0-9a-f]+\.png$")


@login_required
@shows_domain_errors
def live_picture(request: FamilyRequest, draft_id: str, filename: str) -> HttpResponseBase:
    """A picture of the page being made, before the page is kept (owner only)."""
    drafts.load(request.user.pk, draft_id)
    if not LIVE_PICTURE_NAME.match(filename):
        raise Http404(_("There is no such picture."))
    return picture_response(f"{pictures.DRAFTS_PREFIX}{draft_id}/{filename}")


@login_required
@require_http_methods(["GET", "POST"])
@shows_domain_errors
def edit_page(request: FamilyRequest, draft_id: str, number: int) -> HttpResponse:
    draft = drafts.load(request.user.pk, draft_id)
    page = draft.page(number)
    data = request.POST if request.method == "POST" else None
    form = PageTextForm(data, initial={"text": page.text, "question": page.question})
    status = 200
    if data is not None and form.is_valid():
        try:
            services.edit_page(
                user_id=request.user.pk,
                draft_id=draft_id,
                page_number=number,
                text=form.cleaned_data["text"],
                question=form.cleaned_data["question"],
            )
        except InputHeldBack as held_back:
            form.add_error("text", str(held_back))
            status = held_back.status
        else:
            return HttpResponseRedirect(reverse("books:draft", args=[draft_id]) + f"#page-{number}")
    elif form.errors:
        status = 400
    # From the making page, HTMX asks only for the form, to open it inside the page's card.
    template = "books/edit_page.html#edit_form" if request.htmx else "books/edit_page.html"
    context = {"draft": draft, "page": page, "form": form}
    return render(request, template, context, status=status)


@login_required
@shows_domain_errors
def draft_picture(request: FamilyRequest, draft_id: str, number: int) -> HttpResponseBase:
    draft = drafts.load(request.user.pk, draft_id)
    name = next((page.picture for page in draft.pages if page.number == number), "")
    if not name:
        raise Http404(_("This page has no picture."))
    return picture_response(name)


# -- finishing and putting away ----------------------------------------------------------------


@login_required
@require_http_methods(["GET", "POST"])
@shows_domain_errors
def finish(request: FamilyRequest, draft_id: str) -> HttpResponse:
    draft = drafts.load(request.user.pk, draft_id)
    if request.method == "GET" and draft.state is not BookState.DONE:
        # Nothing to name yet: the making page says what is left.
        return redirect("books:draft", draft_id=draft_id)
    form = FinishForm(request.POST if request.method == "POST" else None)
    status = 400 if form.is_bound and not form.is_valid() else 200
    if form.is_bound and form.is_valid():
        try:
            book = services.finish_book(
                user_id=request.user.pk, draft_id=draft_id, title=form.cleaned_data["title"]
            )
        except InputHeldBack as held_back:
            form.add_error("title", str(held_back))
            status = held_back.status
        else:
            messages.success(request, _("“%(title)s” is finished and on your shelf.") % {"title": book.title})
            return redirect(book)
    return render(request, "books/finish.html", {"draft": draft, "form": form}, status=status)


@login_required
@require_http_methods(["GET", "POST"])
@shows_domain_errors
def discard(request: FamilyRequest, draft_id: str) -> HttpResponse:
    """GET asks "are you sure?"; only the POST from that page puts the book away."""
    draft = drafts.load(request.user.pk, draft_id)
    if request.method == "GET":
        return render(request, "books/discard.html", {"draft": draft})
    services.discard_draft(user_id=request.user.pk, draft_id=draft_id)
    messages.info(request, _("The book in progress was put away. Start a new one whenever you like."))
    return redirect("home")


# -- finished books ------------------------------------------------------------------------------


@login_required
def my_books(request: FamilyRequest) -> HttpResponse:
    context = {"books": selectors.books_of(request.user), "draft": drafts.current(request.user.pk)}
    return render(request, "books/mine.html", context)


@login_required
def read_book(request: FamilyRequest, book_id: int) -> HttpResponse:
    """One page at a time: ``?page=0`` (or none) is the cover, then 1..N."""
    book = selectors.book_for_reader(request.user, book_id)
    pages = list(book.pages.all())
    number = _page_number(request.GET.get("page"), len(pages))
    context = {
        "book": book,
        "pages": pages,
        "number": number,
        "page": pages[number - 1] if number else None,
        "cover_page": pages[0] if pages else None,
        "previous_number": number - 1 if number > 0 else None,
        "next_number": number + 1 if number < len(pages) else None,
        "usage": usage_selectors.book_usage(book),
    }
    return render(request, "books/reader.html", context)


def _page_number(raw: str | None, page_total: int) -> int:
    """A page to show, kept within the book; anything unreadable opens the cover."""
    try:
        number = int(raw or 0)
    except ValueError:
        return 0
    return min(max(number, 0), page_total)


@login_required
def book_pdf(request: FamilyRequest, book_id: int) -> HttpResponse:
    """The finished book as a PDF with its pictures, for its own family only."""
    book = selectors.own_book(request.user, book_id)
    try:
        document = pdf.book_pdf(book)
    except pdf.FontMissing:
        context = {
            "message": _("Books can't be made into PDFs on this server yet (a font is missing)."),
            "status": 503,
        }
        context.update(back_url=book.get_absolute_url(), back_label=_("Back to the book"))
        return render(request, "error.html", context, status=503)
    filename = f"{slugify(book.title, allow_unicode=True) or f'book-{book.pk}'}.pdf"
    response = HttpResponse(document, content_type="application/pdf")
    response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=filename)
    patch_cache_control(response, private=True)
    return response


@login_required
def book_picture(request: FamilyRequest, book_id: int, number: int) -> HttpResponseBase:
    return picture_response(selectors.book_picture_name(request.user, book_id, number))


def picture_response(name: str) -> HttpResponseBase:
    """Hand out a picture the caller may see: S3 by a short-lived signed URL, local files streamed."""
    if pictures.is_s3():
        redirect_response = HttpResponseRedirect(pictures.signed_url(name))
        patch_cache_control(redirect_response, private=True, max_age=SIGNED_REDIRECT_MAX_AGE_SECONDS)
        return redirect_response
    try:
        handle = pictures.storage().open(name, "rb")
    except FileNotFoundError as missing:
        raise Http404(_("This picture is gone.")) from missing
    content_type = mimetypes.guess_type(name)[0] or "image/png"
    file_response = FileResponse(handle, content_type=content_type)
    patch_cache_control(file_response, private=True, max_age=PICTURE_MAX_AGE_SECONDS)
    return file_response
