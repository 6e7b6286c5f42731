"""The web pages through Django's test client, on whichever database, cache and storage the run uses.

Making a page starts a run that outlives the request, so those tests post with
``AsyncClient`` in the test's own event loop and wait for the run (``runs.settle``)
before looking at the book, as a browser would wait for the live tabs to finish.
"""

from __future__ import annotations

import asyncio
import html
import re
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.test import AsyncClient, Client
from django.urls import reverse

from books import drafts
from books.domain import BookDraft, BookState
from books.models import Book
from books.ports import AdapterError, Illustrator, Picture, StoryContext, StoryWriter
from safety.models import ModerationFlag
from streaming import live, runs
from streaming.live import RunState
from tests.conftest import USING_S3
from tests.people import first_child, make_parent
from tests.reviewing import finished_book

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHARACTERS = [("Mina", "a girl with a red umbrella"), ("Bori", "a sleepy orange cat")]

# Posting to the async views (make, write) runs database work in other threads: they need
# real commits, not the test's rolled-back transaction.
async_db = pytest.mark.django_db(transaction=True)


class SleepyStoryWriter(StoryWriter):
    """A storyteller that always fails, the way an upstream outage does."""

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        raise AdapterError("The storyteller fell asleep; try again in a moment.")
        yield ""  # pragma: no cover - makes this an async generator


class BrokenIllustrator(Illustrator):
    """An illustrator that cannot draw: a page fails even when the parent wrote its words."""

    async def draw(self, context: StoryContext) -> Picture:
        raise AdapterError("The illustrator's pencils broke; try again in a moment.")


class PatientStoryWriter(StoryWriter):
    """Writes its first words, then waits until the test lets it finish the page."""

    finish: asyncio.Event

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        yield "Mina waited "
        await asyncio.wait_for(self.finish.wait(), timeout=30)
        yield "by the blue door."


@pytest.fixture
def patient_storyteller(settings: Any) -> asyncio.Event:
    """The event that lets the patient storyteller finish its page."""
    PatientStoryWriter.finish = asyncio.Event()
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": f"{__name__}.PatientStoryWriter"}
    return PatientStoryWriter.finish


@pytest.fixture
async def parent_aclient(parent: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(parent)
    return client


@pytest.fixture
async def other_aclient(other_parent: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(other_parent)
    return client


@pytest.fixture(autouse=True)
async def no_run_left_behind() -> AsyncIterator[None]:
    """A test that failed half-way must not leave its page run going into the next test."""
    yield
    for draft_id, run in list(runs._running.items()):
        run.cancel()
        await runs.settle(draft_id)


# -- helpers ------------------------------------------------------------------------------------


def new_book_data(
    characters: list[tuple[str, str]] = CHARACTERS,
    page_count: Any = 3,
    language: str = "en",
    *,
    child: Any = None,
) -> dict[str, Any]:
    """The new-book form as a browser posts it; ``child`` is a Child (or a raw id) to make it with."""
    data: dict[str, Any] = {
        "child": getattr(child, "pk", child) if child is not None else "",
        "characters-TOTAL_FORMS": "6",
        "characters-INITIAL_FORMS": "0",
        "characters-MIN_NUM_FORMS": "0",
        "characters-MAX_NUM_FORMS": "6",
        "page_count": page_count,
        "language": language,
    }
    for index, (name, description) in enumerate(characters):
        data[f"characters-{index}-name"] = name
        data[f"characters-{index}-description"] = description
    return data


def start_book(client: Client, user: Any, page_count: int = 3) -> str:
    data = new_book_data(page_count=page_count, child=first_child(user))
    response = client.post(reverse("books:new"), data)
    draft = drafts.current(user.pk)
    assert draft is not None
    assert response.status_code == 302
    assert response["Location"] == reverse("books:draft", args=[draft.draft_id])
    return draft.draft_id


async def astart_book(client: AsyncClient, user: Any, page_count: int = 3) -> str:
    child = await sync_to_async(first_child)(user)
    response = await client.post(reverse("books:new"), new_book_data(page_count=page_count, child=child))
    draft = await current_draft(user)
    assert draft is not None
    assert response.status_code == 302
    assert response["Location"] == reverse("books:draft", args=[draft.draft_id])
    return draft.draft_id


async def current_draft(user: Any) -> BookDraft | None:
    return await sync_to_async(drafts.current)(user.pk)


def live_tabs_of(draft_id: str) -> str:
    """Where making (or writing) a page sends the browser: the making page, at its live tabs."""
    return reverse("books:draft", args=[draft_id]) + "#live"


async def post_page(
    client: AsyncClient, draft_id: str, number: int, child_input: str = "they find a blue door"
) -> Any:
    """Send the child's words; the answer comes once the page's run is under way."""
    return await client.post(
        reverse("books:make_page", args=[draft_id, number]), {"child_input": child_input}
    )


async def amake_page(
    client: AsyncClient, draft_id: str, number: int, child_input: str = "they find a blue door"
) -> Any:
    """Send the child's words and wait for the page's run to end, however it ends."""
    response = await post_page(client, draft_id, number, child_input)
    await runs.settle(draft_id)
    return response


async def amake_pages(client: AsyncClient, draft_id: str, count: int) -> None:
    for number in range(1, count + 1):
        response = await amake_page(client, draft_id, number, f"idea number {number}")
        assert response.status_code == 302, response.content.decode()


async def afinished_book(client: AsyncClient, user: Any, title: str = "Mina and the Blue Door") -> Book:
    draft_id = await astart_book(client, user, page_count=2)
    await amake_pages(client, draft_id, 2)
    response = await client.post(reverse("books:finish", args=[draft_id]), {"title": title})
    assert response.status_code == 302
    return await Book.objects.aget(owner=user)


async def afetch_picture(client: AsyncClient, url: str) -> bytes:
    """The picture's bytes as a browser would get them: streamed here, or from S3 through a signed URL."""
    response: Any = await client.get(url)
    assert "private" in response["Cache-Control"]
    if USING_S3:
        assert response.status_code == 302
        assert "Signature" in response["Location"] or "X-Amz-Signature" in response["Location"]
        return await asyncio.to_thread(_download, response["Location"])
    assert response.status_code == 200
    assert response["Content-Type"] == "image/png"
    data = b"".join(response.streaming_content)
    response.close()
    return data


def _download(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=10) as remote:
        data: bytes = remote.read()
    return data


def text_of(response: Any) -> str:
    """The page as a reader sees its words (entities such as &#x27; turned back into characters)."""
    return html.unescape(response.content.decode())


def section_problem(page: str, section: str) -> str:
    """What the live tab of ``section`` says went wrong, if anything."""
    found = re.search(rf'id="section-{section}-problem"[^>]*>(.*?)</div>', page, flags=re.S)
    assert found is not None, f"the making page has no live {section} tab"
    return found.group(1)


# -- logging in ------------------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "name", "args"),
    [
        ("get", "books:new", []),
        ("get", "books:mine", []),
        ("get", "books:draft", ["abc"]),
        ("post", "books:make_page", ["abc", 1]),
        ("post", "books:write_page", ["abc", 1]),
        ("get", "books:edit_page", ["abc", 1]),
        ("get", "books:draft_picture", ["abc", 1]),
        ("get", "books:finish", ["abc"]),
        ("post", "books:discard", ["abc"]),
        ("get", "books:read", [1]),
        ("get", "books:book_picture", [1, 1]),
    ],
)
def test_pages_need_a_login(client: Client, method: str, name: str, args: list[Any]) -> None:
    url = reverse(name, args=args)
    response = getattr(client, method)(url)
    assert response.status_code == 302
    assert response["Location"] == f"{reverse('login')}?next={url}"


@pytest.mark.django_db
def test_home_explains_the_product_to_a_visitor(client: Client) -> None:
    response = client.get(reverse("home"))
    assert response.status_code == 200
    page = text_of(response)
    assert "Make a picture book together" in page
    assert reverse("signup") in page
    assert reverse("login") in page


@pytest.mark.django_db
def test_login_and_signup_pages_render(client: Client) -> None:
    assert client.get(reverse("login")).status_code == 200
    assert client.get(reverse("signup")).status_code == 200


def test_home_offers_to_start_a_book(parent_client: Client) -> None:
    page = text_of(parent_client.get(reverse("home")))
    assert "Start a book" in page
    assert reverse("books:new") in page
    assert reverse("books:mine") in page


def test_home_offers_to_continue_the_book_in_progress(parent_client: Client, parent: Any) -> None:
    draft_id = start_book(parent_client, parent, page_count=3)
    page = text_of(parent_client.get(reverse("home")))
    assert "Continue your book" in page
    assert "0 of 3 pages" in page
    assert reverse("books:draft", args=[draft_id]) in page


# -- starting a book -----------------------------------------------------------------------------


def test_new_book_form_shows_three_rows_and_a_way_to_add_more(parent_client: Client) -> None:
    response = parent_client.get(reverse("books:new"))
    assert response.status_code == 200
    page = text_of(response)
    assert len(re.findall(r'name="characters-\d-(?:name|description)"', page)) == 12  # six rows
    assert "Add more characters" in page
    assert 'value="4"' in page  # four pages unless told otherwise


def test_new_book_with_bad_input_keeps_what_was_typed(parent_client: Client, parent: Any) -> None:
    too_long = "N" * 41
    data = new_book_data(characters=[(too_long, "a tall tale"), ("Bori", "a sleepy cat")], page_count=20)
    response = parent_client.post(reverse("books:new"), data)
    assert response.status_code == 400
    page = text_of(response)
    assert "at most 40 characters" in page
    assert "A book has at most 16 pages." in page
    assert f'value="{too_long}"' in page
    assert 'value="a sleepy cat"' in page
    assert 'value="20"' in page
    assert drafts.current(parent.pk) is None


def test_new_book_needs_a_character(parent_client: Client, parent: Any) -> None:
    response = parent_client.post(reverse("books:new"), new_book_data(characters=[("", "")]))
    assert response.status_code == 400
    assert "Name at least one character" in text_of(response)
    assert drafts.current(parent.pk) is None


def test_a_description_without_a_name_is_refused(parent_client: Client) -> None:
    response = parent_client.post(reverse("books:new"), new_book_data(characters=[("", "a lonely hat")]))
    assert response.status_code == 400
    page = text_of(response)
    assert "Every character needs a name." in page
    assert 'value="a lonely hat"' in page


def test_starting_a_book_opens_the_making_page(parent_client: Client, parent: Any) -> None:
    draft_id = start_book(parent_client, parent, page_count=3)
    response = parent_client.get(reverse("books:draft", args=[draft_id]))
    assert response.status_code == 200
    page = text_of(response)
    assert "Page 1 of 3" in page
    assert "Mina" in page and "a sleepy orange cat" in page
    assert "Make page 1" in page
    assert 'maxlength="300"' in page
    assert "write this page yourself" in page


def test_a_second_book_in_progress_is_refused_with_a_link_to_the_first(
    parent_client: Client, parent: Any
) -> None:
    draft_id = start_book(parent_client, parent)
    data = new_book_data(characters=[("Tori", "a tiny bird")], child=first_child(parent))
    response = parent_client.post(reverse("books:new"), data)
    assert response.status_code == 409
    page = text_of(response)
    assert "You already have a book in progress" in page
    assert reverse("books:draft", args=[draft_id]) in page
    assert 'value="Tori"' in page


# -- making pages ----------------------------------------------------------------------------------


@async_db
async def test_making_a_page_shows_it_with_its_picture(parent_aclient: AsyncClient, parent: Any) -> None:
    draft_id = await astart_book(parent_aclient, parent, page_count=3)
    response = await amake_page(parent_aclient, draft_id, 1, "a dragon comes to tea")
    assert response.status_code == 302
    assert response["Location"] == live_tabs_of(draft_id)

    draft = await current_draft(parent)
    assert draft is not None and len(draft.pages) == 1
    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Page 2 of 3" in page
    assert draft.pages[0].text in page
    assert draft.pages[0].question in page
    assert "Page 1 is in your book." in page
    picture_url = reverse("books:draft_picture", args=[draft_id, 1])
    assert picture_url in page
    assert reverse("books:edit_page", args=[draft_id, 1]) in page
    assert (await afetch_picture(parent_aclient, picture_url)).startswith(PNG_SIGNATURE)


@async_db
async def test_the_last_page_leads_to_the_title(parent_aclient: AsyncClient, parent: Any) -> None:
    draft_id = await astart_book(parent_aclient, parent, page_count=2)
    assert (await amake_page(parent_aclient, draft_id, 1)).status_code == 302
    response = await amake_page(parent_aclient, draft_id, 2, "everyone goes home")
    assert response.status_code == 302
    assert response["Location"] == live_tabs_of(draft_id)
    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "All 2 pages are ready — give your book a title" in page
    assert reverse("books:finish", args=[draft_id]) in page
    assert "Make page" not in page


@async_db
async def test_a_page_out_of_order_is_refused_with_a_sentence(
    parent_aclient: AsyncClient, parent: Any
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    response = await amake_page(parent_aclient, draft_id, 2)
    assert response.status_code == 409
    page = text_of(response)
    assert "the next page of this book is page 1" in page
    assert reverse("books:draft", args=[draft_id]) in page  # a way back to the book


@async_db
async def test_an_empty_input_keeps_the_making_page(parent_aclient: AsyncClient, parent: Any) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    response = await amake_page(parent_aclient, draft_id, 1, "   ")
    assert response.status_code == 400
    assert "Tell us what happens next" in text_of(response)
    assert "Make page 1" in text_of(response)


# htmx posts the making page's forms and swaps #book in place (HX-Target: book).
HTMX_INTO_THE_BOOK = {"HX-Request": "true", "HX-Target": "book"}


@async_db
async def test_a_page_asked_for_by_htmx_drops_the_form_and_leaves_the_tabs_to_the_socket(
    parent_aclient: AsyncClient, parent: Any, patient_storyteller: asyncio.Event
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    making = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    # The page holds the socket around #book, and a place for the tabs the socket will draw.
    assert 'id="making" hx-ext="ws" ws-connect="/ws/drafts/' in making
    assert '<section id="live" hidden></section>' in making

    response = await parent_aclient.post(
        reverse("books:make_page", args=[draft_id, 1]),
        {"child_input": "they find a blue door"},
        headers=HTMX_INTO_THE_BOOK,
    )
    answer = text_of(response)
    assert response.status_code == 200 and response["HX-Reswap"] == "none"
    assert '<section id="next" hx-swap-oob="delete">' in answer  # no second page meanwhile
    assert 'id="book"' not in answer and "<html" not in answer
    # The run is under way and its tabs are in the snapshot the socket sends.
    snapshot = live.read_snapshot(draft_id)
    assert snapshot is not None and snapshot.is_active and snapshot.page_number == 1

    patient_storyteller.set()
    await runs.settle(draft_id)
    book = await parent_aclient.get(reverse("books:draft", args=[draft_id]), headers=HTMX_INTO_THE_BOOK)
    fetched = text_of(book)
    # What htmx fetches when the run ends: #book alone, the page in it, and the frame it was
    # drawn at so the socket can catch it up.
    assert fetched.lstrip().startswith('<div id="book">') and "<html" not in fetched
    assert 'id="page-1"' in fetched and "ws-connect" not in fetched
    drawn_at = re.search(r"""hx-vals='\{"drawn_at": (\d+)\}'""", fetched)
    finished = live.read_snapshot(draft_id)
    assert drawn_at is not None and finished is not None and int(drawn_at.group(1)) == finished.seq


@async_db
async def test_a_refused_page_asked_for_by_htmx_comes_back_in_the_book_with_the_words_kept(
    parent_aclient: AsyncClient, parent: Any, patient_storyteller: asyncio.Event
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    make = reverse("books:make_page", args=[draft_id, 1])
    empty = await parent_aclient.post(make, {"child_input": "   "}, headers=HTMX_INTO_THE_BOOK)
    assert empty.status_code == 400
    assert text_of(empty).lstrip().startswith('<div id="book">')
    assert "Tell us what happens next" in text_of(empty)

    first = await parent_aclient.post(make, {"child_input": "the first idea"}, headers=HTMX_INTO_THE_BOOK)
    assert first.status_code == 200
    again = await parent_aclient.post(make, {"child_input": "the second idea"}, headers=HTMX_INTO_THE_BOOK)
    assert again.status_code == 409
    refused = text_of(again)
    assert refused.lstrip().startswith('<div id="book">') and "<html" not in refused
    assert "A page is being made right now" in refused
    assert reverse("books:draft", args=[draft_id]) in refused  # the way back to the book

    patient_storyteller.set()
    await runs.settle(draft_id)
    draft = await current_draft(parent)
    assert draft is not None and [page.child_input for page in draft.pages] == ["the first idea"]


@async_db
async def test_a_second_page_while_one_is_being_made_is_refused(
    parent_aclient: AsyncClient, parent: Any, patient_storyteller: asyncio.Event
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    first = await post_page(parent_aclient, draft_id, 1, "the first idea")
    assert first.status_code == 302 and first["Location"] == live_tabs_of(draft_id)

    again = await post_page(parent_aclient, draft_id, 1, "the second idea")
    assert again.status_code == 409
    assert "A page is being made right now" in text_of(again)
    own_words = await parent_aclient.post(
        reverse("books:write_page", args=[draft_id, 1]), {"write-text": "My own page."}
    )
    assert own_words.status_code == 409
    making = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Making page 1…" in making
    assert "“the first idea”" in making
    assert 'name="child_input"' not in making  # no second page can be asked for meanwhile

    patient_storyteller.set()
    await runs.settle(draft_id)
    draft = await current_draft(parent)
    assert draft is not None and len(draft.pages) == 1
    assert draft.pages[0].child_input == "the first idea"
    assert draft.pages[0].text == "Mina waited by the blue door."


@async_db
async def test_a_failed_page_keeps_the_input_and_the_book(
    parent_aclient: AsyncClient, parent: Any, settings: Any
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": f"{__name__}.SleepyStoryWriter"}

    response = await amake_page(parent_aclient, draft_id, 1, "a whale sings a song")
    assert response.status_code == 302
    assert response["Location"] == live_tabs_of(draft_id)
    draft = await current_draft(parent)
    assert draft is not None
    assert draft.pages == [] and draft.state is BookState.IN_PROGRESS
    assert draft.pending_input == "a whale sings a song"
    assert "Page 1 could not be made" in draft.last_error

    # The making page the browser lands on says what went wrong and keeps the child's words.
    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Page 1 could not be made" in page
    assert "a whale sings a song</textarea>" in page
    assert "The storyteller fell asleep" in section_problem(page, "story")
    assert 'id="badge-story" class="badge is-unhealthy"' in page
    assert "Make the story again" in page
    # Coming back later, the notice and the child's words are still there.
    again = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Page 1 could not be made" in again
    assert "a whale sings a song</textarea>" in again

    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.offline.OfflineStoryWriter",
    }
    assert (await amake_page(parent_aclient, draft_id, 1, "a whale sings a song")).status_code == 302
    draft = await current_draft(parent)
    assert draft is not None and len(draft.pages) == 1 and draft.last_error == ""
    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "could not be made" not in page
    assert "Page 1 is in your book." in page


def box(page: str, name: str) -> str:
    """What the making page's field ``name`` holds as the browser shows it ("" when empty)."""
    textarea = re.search(rf'<textarea[^>]*name="{name}"[^>]*>(.*?)</textarea>', page, flags=re.S)
    if textarea is not None:
        return textarea.group(1).strip()
    field = re.search(rf'<input[^>]*name="{name}"[^>]*>', page)
    assert field is not None, f"the making page has no {name} field"
    value = re.search(r'value="([^"]*)"', field.group(0))
    return value.group(1) if value else ""


def writing_it_yourself_is_open(page: str) -> bool:
    found = re.search(r'<details class="write-yourself"( open)?>', page)
    assert found is not None, "the making page has no write-it-yourself section"
    return found.group(1) is not None


def form_said_to_keep_the_words(page: str) -> str:
    """Which form the "your words are still in the box" hint is in: the child's or the parent's."""
    assert page.count('class="hint kept-words"') == 1
    hint, parents = page.index('class="hint kept-words"'), page.index('<details class="write-yourself"')
    return "parent's" if hint > parents else "child's"


@async_db
async def test_a_short_page_the_parent_wrote_that_fails_comes_back_in_their_box_with_its_question(
    parent_aclient: AsyncClient, parent: Any, settings: Any
) -> None:
    """Words as short as a child's idea are still the parent's: the child's box stays empty."""
    draft_id = await astart_book(parent_aclient, parent)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "ILLUSTRATOR": f"{__name__}.BrokenIllustrator"}
    words = "Mina opened the gate."

    response = await parent_aclient.post(
        reverse("books:write_page", args=[draft_id, 1]),
        {"write-text": words, "write-question": "Who is there?"},
    )
    await runs.settle(draft_id)

    assert response.status_code == 302
    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Page 1 could not be made" in page
    assert (box(page, "write-text"), box(page, "write-question")) == (words, "Who is there?")
    assert box(page, "child_input") == ""
    assert writing_it_yourself_is_open(page) and form_said_to_keep_the_words(page) == "parent's"


@async_db
async def test_a_childs_idea_that_fails_comes_back_in_the_childs_box(
    parent_aclient: AsyncClient, parent: Any, settings: Any
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "ILLUSTRATOR": f"{__name__}.BrokenIllustrator"}

    await amake_page(parent_aclient, draft_id, 1, "a whale sings a song")

    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Page 1 could not be made" in page
    assert box(page, "child_input") == "a whale sings a song"
    assert (box(page, "write-text"), box(page, "write-question")) == ("", "")
    assert not writing_it_yourself_is_open(page) and form_said_to_keep_the_words(page) == "child's"


@async_db
async def test_writing_a_page_yourself(parent_aclient: AsyncClient, parent: Any) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    response = await parent_aclient.post(
        reverse("books:write_page", args=[draft_id, 1]),
        {
            "write-text": "Mina opened her red umbrella and floated up.",
            "write-question": "Where will she land?",
        },
    )
    assert response.status_code == 302
    assert response["Location"] == live_tabs_of(draft_id)
    await runs.settle(draft_id)
    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Mina opened her red umbrella and floated up." in page
    assert "Where will she land?" in page
    assert "in your own words" in page
    picture = await afetch_picture(parent_aclient, reverse("books:draft_picture", args=[draft_id, 1]))
    assert picture.startswith(PNG_SIGNATURE)


@async_db
async def test_writing_an_empty_page_yourself_is_refused(parent_aclient: AsyncClient, parent: Any) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    response = await parent_aclient.post(reverse("books:write_page", args=[draft_id, 1]), {"write-text": " "})
    assert response.status_code == 400
    assert "A page needs some words." in text_of(response)


@async_db
async def test_editing_a_page(parent_aclient: AsyncClient, parent: Any) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    await amake_pages(parent_aclient, draft_id, 1)
    edit_url = reverse("books:edit_page", args=[draft_id, 1])

    form = await parent_aclient.get(edit_url)
    assert form.status_code == 200 and "<html" in text_of(form)
    inline = await parent_aclient.get(edit_url, headers={"HX-Request": "true"})
    assert inline.status_code == 200
    assert "<html" not in text_of(inline) and 'name="text"' in text_of(inline)

    refused = await parent_aclient.post(edit_url, {"text": "", "question": ""})
    assert refused.status_code == 400
    assert "A page needs some words." in text_of(refused)

    response = await parent_aclient.post(
        edit_url, {"text": "Bori yawned a very big yawn.", "question": "Is Bori sleepy?"}
    )
    assert response.status_code == 302
    assert response["Location"] == reverse("books:draft", args=[draft_id]) + "#page-1"
    page = text_of(await parent_aclient.get(reverse("books:draft", args=[draft_id])))
    assert "Bori yawned a very big yawn." in page and "Is Bori sleepy?" in page


def test_editing_a_page_that_does_not_exist_is_refused(parent_client: Client, parent: Any) -> None:
    draft_id = start_book(parent_client, parent)
    response = parent_client.get(reverse("books:edit_page", args=[draft_id, 3]))
    assert response.status_code == 409
    assert "This book has no page 3 yet." in text_of(response)


@async_db
async def test_another_familys_draft_is_not_found(
    parent_aclient: AsyncClient, parent: Any, other_aclient: AsyncClient
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    await amake_pages(parent_aclient, draft_id, 1)
    sentence = drafts.NOT_FOUND_SENTENCE
    attempts = [
        await other_aclient.get(reverse("books:draft", args=[draft_id])),
        await amake_page(other_aclient, draft_id, 2),
        await other_aclient.post(
            reverse("books:write_page", args=[draft_id, 2]), {"write-text": "Mine now."}
        ),
        await other_aclient.post(
            reverse("books:edit_page", args=[draft_id, 1]), {"text": "Mine now.", "question": ""}
        ),
        await other_aclient.post(reverse("books:finish", args=[draft_id]), {"title": "Stolen"}),
        await other_aclient.post(reverse("books:discard", args=[draft_id])),
        await other_aclient.get(reverse("books:draft_picture", args=[draft_id, 1])),
    ]
    for response in attempts:
        assert response.status_code == 404
        assert sentence in text_of(response)
    draft = await current_draft(parent)
    assert draft is not None and len(draft.pages) == 1 and "Mine now." not in draft.pages[0].text


@async_db
async def test_another_familys_live_picture_and_edit_form_are_not_found(
    parent_aclient: AsyncClient, parent: Any, other_aclient: AsyncClient, other_parent: Any
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    await amake_pages(parent_aclient, draft_id, 1)
    await astart_book(other_aclient, other_parent)  # they have a book in progress of their own
    snapshot = await live.hub().snapshot(draft_id)
    assert snapshot is not None
    picture_url = reverse("books:live_picture", args=[draft_id, snapshot.sections["picture"].picture_file])
    edit_url = reverse("books:edit_page", args=[draft_id, 1])
    assert (await afetch_picture(parent_aclient, picture_url)).startswith(PNG_SIGNATURE)
    draft = await current_draft(parent)
    assert draft is not None

    for response in [await other_aclient.get(picture_url), await other_aclient.get(edit_url)]:
        assert response.status_code == 404
        assert drafts.NOT_FOUND_SENTENCE in text_of(response)
        assert PNG_SIGNATURE not in response.content
        assert draft.pages[0].text not in text_of(response)


@async_db
async def test_another_family_cannot_stop_the_page_being_made(
    parent_aclient: AsyncClient,
    parent: Any,
    other_aclient: AsyncClient,
    other_parent: Any,
    patient_storyteller: asyncio.Event,
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    await astart_book(other_aclient, other_parent)
    await post_page(parent_aclient, draft_id, 1, "the first idea")

    response = await other_aclient.post(reverse("books:stop", args=[draft_id]))

    assert response.status_code == 404
    assert drafts.NOT_FOUND_SENTENCE in text_of(response)
    patient_storyteller.set()
    await runs.settle(draft_id)
    draft = await current_draft(parent)
    assert draft is not None and [p.text for p in draft.pages] == ["Mina waited by the blue door."]


@async_db
async def test_another_family_cannot_retry_a_failed_page(
    parent_aclient: AsyncClient,
    parent: Any,
    other_aclient: AsyncClient,
    other_parent: Any,
    settings: Any,
) -> None:
    draft_id = await astart_book(parent_aclient, parent)
    await astart_book(other_aclient, other_parent)
    offline = settings.LITTLEWRITER
    settings.LITTLEWRITER = {**offline, "STORY_WRITER": f"{__name__}.SleepyStoryWriter"}
    await amake_page(parent_aclient, draft_id, 1, "a whale sings a song")
    settings.LITTLEWRITER = offline  # a retry now would make the page

    response = await other_aclient.post(reverse("books:retry", args=[draft_id]), {"section": "story"})
    await runs.settle(draft_id)

    assert response.status_code == 404
    assert drafts.NOT_FOUND_SENTENCE in text_of(response)
    snapshot = await live.hub().snapshot(draft_id)
    assert snapshot is not None and snapshot.state is RunState.NEEDS_ATTENTION
    draft = await current_draft(parent)
    assert draft is not None and draft.pages == [] and draft.pending_input == "a whale sings a song"


def test_a_missing_draft_picture_is_not_found(parent_client: Client, parent: Any) -> None:
    draft_id = start_book(parent_client, parent)
    assert parent_client.get(reverse("books:draft_picture", args=[draft_id, 1])).status_code == 404


def test_an_expired_draft_says_so_and_offers_a_new_book(parent_client: Client, parent: Any) -> None:
    draft_id = start_book(parent_client, parent)
    cache.delete(f"draft:user:{parent.pk}")  # what the TTL does; the "seen" marker outlives it
    response = parent_client.get(reverse("books:draft", args=[draft_id]))
    assert response.status_code == 410
    page = text_of(response)
    assert drafts.EXPIRED_SENTENCE in page
    assert reverse("books:new") in page


# -- finishing and putting away ---------------------------------------------------------------------


def test_finishing_before_the_last_page_is_refused(parent_client: Client, parent: Any) -> None:
    draft_id = start_book(parent_client, parent, page_count=3)
    response = parent_client.post(reverse("books:finish", args=[draft_id]), {"title": "Too soon"})
    assert response.status_code == 409
    assert "3 more page(s) to make" in text_of(response)
    assert not Book.objects.exists()
    # The form itself sends back to the pages while there is nothing to name yet.
    form = parent_client.get(reverse("books:finish", args=[draft_id]))
    assert form.status_code == 302 and form["Location"] == reverse("books:draft", args=[draft_id])


@async_db
async def test_finishing_needs_a_title(parent_aclient: AsyncClient, parent: Any) -> None:
    draft_id = await astart_book(parent_aclient, parent, page_count=2)
    await amake_pages(parent_aclient, draft_id, 2)
    assert (await parent_aclient.get(reverse("books:finish", args=[draft_id]))).status_code == 200
    response = await parent_aclient.post(reverse("books:finish", args=[draft_id]), {"title": "  "})
    assert response.status_code == 400
    assert "Give your book a title." in text_of(response)
    assert await current_draft(parent) is not None
    assert not await Book.objects.aexists()


def test_putting_a_book_away_asks_first(parent_client: Client, parent: Any) -> None:
    draft_id = start_book(parent_client, parent)
    confirm = parent_client.get(reverse("books:discard", args=[draft_id]))
    assert confirm.status_code == 200
    assert "Put this book away?" in text_of(confirm)
    assert drafts.current(parent.pk) is not None

    response = parent_client.post(reverse("books:discard", args=[draft_id]))
    assert response.status_code == 302 and response["Location"] == reverse("home")
    assert drafts.current(parent.pk) is None
    assert "Start a book" in text_of(parent_client.get(reverse("home")))


# -- reading -----------------------------------------------------------------------------------------


@async_db
async def test_a_finished_book_is_read_page_by_page(parent_aclient: AsyncClient, parent: Any) -> None:
    book = await afinished_book(parent_aclient, parent, title="Mina and the Blue Door")
    assert await current_draft(parent) is None

    cover = text_of(await parent_aclient.get(reverse("books:read", args=[book.pk])))
    assert "Mina and the Blue Door" in cover
    assert "Mina" in cover and "Bori" in cover
    assert "?page=1" in cover

    pages = [page async for page in book.pages.order_by("number")]
    assert [p.number for p in pages] == [1, 2]
    for page in pages:
        response = await parent_aclient.get(reverse("books:read", args=[book.pk]), {"page": page.number})
        assert response.status_code == 200
        body = text_of(response)
        assert page.text.split(".")[0] in body
        picture_url = reverse("books:book_picture", args=[book.pk, page.number])
        assert picture_url in body
        assert (await afetch_picture(parent_aclient, picture_url)).startswith(PNG_SIGNATURE)
    last = text_of(await parent_aclient.get(reverse("books:read", args=[book.pk]), {"page": 2}))
    assert "back to my books" in last

    shelf = text_of(await parent_aclient.get(reverse("books:mine")))
    assert "Mina and the Blue Door" in shelf
    assert book.get_absolute_url() in shelf


@async_db
async def test_reader_keeps_the_page_number_inside_the_book(parent_aclient: AsyncClient, parent: Any) -> None:
    book = await afinished_book(parent_aclient, parent)
    for raw in ("99", "-3", "cat"):
        response = await parent_aclient.get(reverse("books:read", args=[book.pk]), {"page": raw})
        assert response.status_code == 200


@async_db
async def test_another_familys_book_and_pictures_are_not_found(
    parent_aclient: AsyncClient, parent: Any, other_aclient: AsyncClient
) -> None:
    book = await afinished_book(parent_aclient, parent)
    assert (await other_aclient.get(reverse("books:read", args=[book.pk]))).status_code == 404
    assert (await other_aclient.get(reverse("books:book_picture", args=[book.pk, 1]))).status_code == 404
    assert book.title not in text_of(await other_aclient.get(reverse("books:mine")))


@async_db
async def test_staff_alone_cannot_read_a_familys_book_but_an_admin_who_may_view_books_can(
    parent_aclient: AsyncClient, parent: Any
) -> None:
    book = await afinished_book(parent_aclient, parent)
    member: Any = await sync_to_async(make_parent)("rita")
    member.is_staff = True
    await member.asave()
    staff = AsyncClient()
    await staff.aforce_login(member)
    assert (await staff.get(reverse("books:read", args=[book.pk]))).status_code == 404
    assert (await staff.get(reverse("books:book_picture", args=[book.pk, 1]))).status_code == 404

    view_book = await Permission.objects.aget(codename="view_book", content_type__app_label="books")
    await sync_to_async(member.user_permissions.add)(view_book)
    admin = AsyncClient()
    await admin.aforce_login(member)
    assert (await admin.get(reverse("books:read", args=[book.pk]))).status_code == 200
    picture = await afetch_picture(admin, reverse("books:book_picture", args=[book.pk, 1]))
    assert picture.startswith(PNG_SIGNATURE)


# -- numbers no database row can have ---------------------------------------------------------------

# 2**63 is one past the largest integer SQLite and PostgreSQL compare with; the longer one was made up.
BEYOND_THE_DATABASE = [str(2**63), "9" * 25]
NOT_FOUND_HEADING = "We couldn't find that"


@pytest.mark.django_db
@pytest.mark.parametrize("huge", BEYOND_THE_DATABASE)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/{huge}/"),
        ("get", "/{huge}/book.pdf"),
        ("get", "/{huge}/pages/1/picture"),
        ("get", "/{book}/pages/{huge}/picture"),
        ("get", "/drafts/{draft}/pages/{huge}/picture"),
        ("get", "/drafts/{draft}/pages/{huge}/edit"),
        ("post", "/drafts/{draft}/pages/{huge}/make"),
        ("post", "/drafts/{draft}/pages/{huge}/write"),
        ("get", "/children/{huge}/edit/"),
        ("post", "/children/{huge}/delete/"),
    ],
)
def test_a_number_beyond_what_the_database_holds_is_a_friendly_404(
    parent_client: Client, parent: Any, method: str, path: str, huge: str
) -> None:
    book = finished_book(parent)
    draft_id = start_book(parent_client, parent)
    url = path.format(huge=huge, book=book.pk, draft=draft_id)
    # Unkind words would be kept as a flag on that page number, were it let through.
    response = getattr(parent_client, method)(
        url, {"child_input": "the troll kills the goat", "write-text": "Bori is a stupid cat."}
    )
    assert response.status_code == 404
    assert NOT_FOUND_HEADING in text_of(response)
    assert parent_client.get(book.get_absolute_url()).status_code == 200


@pytest.mark.django_db
def test_a_page_number_no_page_can_have_is_a_404_before_any_words_are_kept(
    parent_client: Client, parent: Any
) -> None:
    draft_id = start_book(parent_client, parent)
    # A page (and a flag's page) is stored as a small integer: 32767 at most.
    response = parent_client.post(
        f"/drafts/{draft_id}/pages/32768/make", {"child_input": "the troll kills the goat"}
    )
    assert response.status_code == 404
    assert NOT_FOUND_HEADING in text_of(response)
    assert not ModerationFlag.objects.exists()
