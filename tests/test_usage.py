"""What making a book used: recorded per section, summed per page and per book, shown to the
parent and in admin. The OpenAI path goes through the real SDK against the fake server."""

from __future__ import annotations

import asyncio
import html
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient, Client
from django.urls import reverse

from books import services
from books.adapters.openai import OpenAIStoryWriter
from books.domain import BookDraft, Language
from books.models import Book
from books.ports import AdapterError, StoryContext, StoryWriter
from books.services import PageFailed
from streaming import runs
from tests.fake_openai import FakeOpenAI, point_settings_at
from tests.live_fixtures import no_run_left_behind  # noqa: F401 - autouse for this module
from tests.people import start_book_with_child
from usage import meter, selectors
from usage.meter import PageMeter
from usage.models import UsageRecord

pytestmark = pytest.mark.django_db(transaction=True)

CHARACTERS = [("Mina", "a girl with a red umbrella"), ("Bori", "a sleepy orange cat")]

# What the fake server is scripted to report for each call of a page.
STORY_USAGE = (100, 40)
LATER_TEXT_USAGE = (70, 10)  # the question and the new words, which start together after the story
PICTURE_USAGE = (30, 272)


class BrokenStoryWriter(StoryWriter):
    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        raise AdapterError("The storyteller is busy right now; try again in a moment.")
        yield ""  # pragma: no cover - makes this an async generator


@pytest.fixture
def openai_storyteller(settings: Any, fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    point_settings_at(settings, fake_openai, timeout=10.0)
    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.openai.OpenAIStoryWriter",
        "QUESTION_WRITER": "books.adapters.openai.OpenAIQuestionWriter",
        "ILLUSTRATOR": "books.adapters.openai.OpenAIIllustrator",
        "WORD_EXPLAINER": "books.adapters.openai.OpenAIWordExplainer",
        "OPENAI_TEXT_MODEL": "gpt-4o-mini",
        "OPENAI_IMAGE_MODEL": "gpt-image-1",
    }
    yield fake_openai


@pytest.fixture
async def parent_aclient(parent: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(parent)
    return client


def script_a_page(server: FakeOpenAI, *, last: bool = False) -> None:
    server.script("chat", usage=STORY_USAGE)
    server.script("chat", usage=LATER_TEXT_USAGE, times=1 if last else 2)
    server.script("images", usage=PICTURE_USAGE)


def page_tokens(*, last: bool = False) -> int:
    later = 1 if last else 2
    return sum(STORY_USAGE) + later * sum(LATER_TEXT_USAGE) + sum(PICTURE_USAGE)


async def a_book(user: Any, pages: int = 2) -> BookDraft:
    return await sync_to_async(start_book_with_child)(
        user, characters=CHARACTERS, page_count=pages, language="en"
    )


async def make(user: Any, draft: BookDraft, number: int) -> BookDraft:
    return await services.make_next_page(
        user_id=user.pk, draft_id=draft.draft_id, page_number=number, child_input=f"idea number {number}"
    )


async def records_of(draft_id: str) -> list[UsageRecord]:
    return [r async for r in UsageRecord.objects.filter(draft_id=draft_id).order_by("page_number", "section")]


def by_section(records: list[UsageRecord], page_number: int) -> dict[str, UsageRecord]:
    return {r.section: r for r in records if r.page_number == page_number}


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


# -- the meter ------------------------------------------------------------------------------------


async def test_each_section_counts_into_its_own_reading_even_at_the_same_time() -> None:
    page = PageMeter()

    async def section(name: str, tokens: int) -> None:
        with page.section(name):
            await asyncio.sleep(0)
            meter.count(adapter="openai", model="m", input_tokens=tokens)
            await asyncio.sleep(0)
            meter.count(adapter="openai", model="m", output_tokens=1)

    await asyncio.gather(section("question", 5), section("new_words", 7))
    assert page.readings["question"].input_tokens == 5
    assert page.readings["new_words"].input_tokens == 7
    assert page.readings["question"].output_tokens == page.readings["new_words"].output_tokens == 1


def test_an_adapter_outside_a_page_counts_into_nothing() -> None:
    meter.count(adapter="openai", input_tokens=10)  # no error, and nowhere to count it


async def test_the_openai_writer_asks_for_usage_and_reports_it(openai_storyteller: FakeOpenAI) -> None:
    openai_storyteller.script("chat", usage=(321, 12))
    page = PageMeter()
    context = StoryContext(
        characters=(),
        language=Language.ENGLISH,
        page_number=1,
        page_count=2,
        pages_so_far=(),
        child_input="a kite",
    )
    with page.section("story"):
        text = "".join([piece async for piece in OpenAIStoryWriter().write(context)])
    assert text
    [body] = openai_storyteller.requests_to("chat")
    assert body["stream_options"] == {"include_usage": True}
    reading = page.readings["story"]
    assert (reading.adapter, reading.model) == ("openai", "gpt-4o-mini")
    assert (reading.input_tokens, reading.output_tokens, reading.pictures) == (321, 12, 0)


async def test_a_provider_that_reports_no_usage_leaves_zero_tokens(openai_storyteller: FakeOpenAI) -> None:
    openai_storyteller.script("chat", no_usage=True)
    page = PageMeter()
    context = StoryContext((), Language.ENGLISH, 1, 2, (), "a kite")
    with page.section("story"):
        assert "".join([piece async for piece in OpenAIStoryWriter().write(context)])
    reading = page.readings["story"]
    assert reading.adapter == "openai" and reading.input_tokens == reading.output_tokens == 0


# -- recording, offline -------------------------------------------------------------------------------


async def test_the_offline_storyteller_records_pictures_and_no_tokens(parent: Any) -> None:
    draft = await a_book(parent)
    await make(parent, draft, 1)
    await make(parent, draft, 2)

    records = await records_of(draft.draft_id)
    first, last = by_section(records, 1), by_section(records, 2)
    assert set(first) == {"story", "question", "new_words", "picture"}
    assert set(last) == {"story", "new_words", "picture"}  # the last page asks no question
    assert all(r.adapter == "offline" and r.tokens == 0 for r in records)
    assert [r.pictures for r in records if r.section == "picture"] == [1, 1]
    assert all(r.user_id == parent.pk and r.book_id is None for r in records)


async def test_the_parents_own_words_use_nothing_but_the_picture_and_new_words(parent: Any) -> None:
    draft = await a_book(parent)
    await services.write_page_yourself(
        user_id=parent.pk,
        draft_id=draft.draft_id,
        page_number=1,
        text="Mina opened her umbrella.",
        question="Where will she go?",
    )
    assert set(by_section(await records_of(draft.draft_id), 1)) == {"picture", "new_words"}


async def test_a_failed_page_still_records_what_it_used(parent: Any, settings: Any) -> None:
    draft = await a_book(parent)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": f"{__name__}.BrokenStoryWriter"}
    with pytest.raises(PageFailed):
        await make(parent, draft, 1)
    sections = by_section(await records_of(draft.draft_id), 1)
    assert sections["picture"].pictures == 1  # drawn before the page failed: it was spent


async def test_finishing_gives_the_records_to_the_book(parent: Any, other_parent: Any) -> None:
    draft = await a_book(parent)
    await make(parent, draft, 1)
    await make(parent, draft, 2)
    theirs = await a_book(other_parent)
    await make(other_parent, theirs, 1)

    book = await sync_to_async(services.finish_book)(
        user_id=parent.pk, draft_id=draft.draft_id, title="Kites"
    )

    assert await UsageRecord.objects.filter(book=book).acount() == 7
    assert not await UsageRecord.objects.filter(draft_id=draft.draft_id, book__isnull=True).aexists()
    assert not await UsageRecord.objects.filter(user=other_parent, book__isnull=False).aexists()
    used = await sync_to_async(selectors.book_usage)(book)
    assert (used.total.tokens, used.total.pictures) == (0, 2)
    assert used.page(1).pictures == used.page(2).pictures == 1


async def test_deleting_a_book_deletes_its_records(parent: Any) -> None:
    draft = await a_book(parent)
    await make(parent, draft, 1)
    await make(parent, draft, 2)
    book = await sync_to_async(services.finish_book)(
        user_id=parent.pk, draft_id=draft.draft_id, title="Kites"
    )
    await book.adelete()
    assert not await UsageRecord.objects.filter(draft_id=draft.draft_id).aexists()


# -- the OpenAI path, end to end --------------------------------------------------------------------


async def test_openai_usage_is_recorded_and_shown_per_page_and_per_book(
    parent_aclient: AsyncClient, parent: Any, openai_storyteller: FakeOpenAI
) -> None:
    server = openai_storyteller
    draft = await a_book(parent)

    script_a_page(server)
    response = await parent_aclient.post(
        reverse("books:make_page", args=[draft.draft_id, 1]), {"child_input": "a kite flies away"}
    )
    assert response.status_code == 302
    await runs.settle(draft.draft_id)

    sections = by_section(await records_of(draft.draft_id), 1)
    assert {name: (r.input_tokens, r.output_tokens, r.pictures) for name, r in sections.items()} == {
        "story": (*STORY_USAGE, 0),
        "question": (*LATER_TEXT_USAGE, 0),
        "new_words": (*LATER_TEXT_USAGE, 0),
        "picture": (*PICTURE_USAGE, 1),
    }
    assert {r.model for r in sections.values()} == {"gpt-4o-mini", "gpt-image-1"}
    assert sections["picture"].model == "gpt-image-1"
    assert all(body["stream_options"] == {"include_usage": True} for body in server.requests_to("chat"))

    first_page = page_tokens()
    making = text_of(await parent_aclient.get(reverse("books:draft", args=[draft.draft_id])))
    assert f"This page used {first_page} tokens and 1 picture." in making
    assert f"So far this book used {first_page} tokens and 1 picture." in making

    script_a_page(server, last=True)
    response = await parent_aclient.post(
        reverse("books:make_page", args=[draft.draft_id, 2]), {"child_input": "they all go home"}
    )
    assert response.status_code == 302
    await runs.settle(draft.draft_id)
    finished = await parent_aclient.post(reverse("books:finish", args=[draft.draft_id]), {"title": "Kites"})
    assert finished.status_code == 302
    book = await Book.objects.aget(owner=parent)

    whole_book = first_page + page_tokens(last=True)
    assert whole_book == 1124  # the figures the fake reported, summed by hand
    cover = text_of(await parent_aclient.get(reverse("books:read", args=[book.pk])))
    assert "This book used 1,124 tokens and 2 pictures." in cover
    page_one = text_of(await parent_aclient.get(reverse("books:read", args=[book.pk]) + "?page=1"))
    assert f"This page used {first_page} tokens and 1 picture." in page_one
    page_two = text_of(await parent_aclient.get(reverse("books:read", args=[book.pk]) + "?page=2"))
    assert f"This page used {page_tokens(last=True)} tokens and 1 picture." in page_two


# -- admin ------------------------------------------------------------------------------------------


def _finished_offline_book(user: Any) -> Book:
    from asgiref.sync import async_to_sync

    draft = async_to_sync(a_book)(user)
    async_to_sync(make)(user, draft, 1)
    async_to_sync(make)(user, draft, 2)
    return services.finish_book(user_id=user.pk, draft_id=draft.draft_id, title="Kites")


def test_admin_lists_usage_records_with_filters_and_search(
    admin_client: Client, parent: Any, other_parent: Any
) -> None:
    book = _finished_offline_book(parent)
    _finished_offline_book(other_parent)
    UsageRecord.objects.filter(book=book, section="story").update(
        adapter="openai", model="gpt-4o-mini", input_tokens=500, output_tokens=60
    )
    changelist = reverse("admin:usage_usagerecord_changelist")

    everything = admin_client.get(changelist)
    assert everything.status_code == 200
    assert "14 usage records" in everything.content.decode()

    filtered = admin_client.get(
        changelist, {"section__exact": "story", "model__exact": "gpt-4o-mini", "user__id__exact": parent.pk}
    )
    page = filtered.content.decode()
    assert filtered.status_code == 200
    assert "2 usage records" in page  # both story rows of this family's book
    assert '<td class="field-input_tokens">500</td>' in page

    searched = admin_client.get(changelist, {"q": "ben"})
    assert "7 usage records" in searched.content.decode()

    dated = admin_client.get(
        changelist, {"created_at__gte": "2000-01-01 00:00:00+00:00", "adapter__exact": "offline"}
    )
    assert "12 usage records" in dated.content.decode()

    record = UsageRecord.objects.filter(book=book).first()
    assert record is not None
    change = admin_client.get(reverse("admin:usage_usagerecord_change", args=[record.pk]))
    assert change.status_code == 200
    assert admin_client.get(reverse("admin:usage_usagerecord_add")).status_code == 403


def test_the_book_admin_shows_what_each_book_used(admin_client: Client, parent: Any) -> None:
    book = _finished_offline_book(parent)
    UsageRecord.objects.filter(book=book, section="story").update(input_tokens=1000, output_tokens=234)

    listing = admin_client.get(reverse("admin:books_book_changelist")).content.decode()
    assert '<td class="field-page_total">2</td>' in listing  # not multiplied by the usage rows
    assert '<td class="field-tokens_used">2468</td>' in listing
    assert '<td class="field-pictures_used">2</td>' in listing

    change = admin_client.get(reverse("admin:books_book_change", args=[book.pk])).content.decode()
    assert "Tokens used" in change and "2468" in change


async def test_a_page_shown_without_usage_says_nothing_about_it(parent: Any) -> None:
    # The shared-link and review pages include the same page card with no ``usage`` at all.
    from django.template.loader import render_to_string

    draft = await a_book(parent)
    draft = await make(parent, draft, 1)
    context = {"page": draft.pages[0], "picture_url": "/p.png", "language": "en"}
    html_without = await sync_to_async(render_to_string)("books/page_card.html#page_card", context)
    assert "This page used" not in html_without
    used = await sync_to_async(selectors.draft_usage)(user_id=parent.pk, draft_id=draft.draft_id)
    html_with = await sync_to_async(render_to_string)(
        "books/page_card.html#page_card", {**context, "usage": used}
    )
    assert "This page used 0 tokens and 1 picture." in html_with
