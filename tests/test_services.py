"""Use cases on the real database, cache and picture store (whichever the run configures)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import DatabaseError

from books import drafts, pictures, services
from books.domain import AlreadyGenerating, BookState, IllegalMove, InvalidBook, PageSource
from books.drafts import DraftExpired, DraftNotFound, GenerationLock
from books.models import Book, Page
from books.ports import AdapterError, StoryContext, StoryWriter
from books.services import PageFailed
from tests.people import start_book_with_child

pytestmark = pytest.mark.django_db(transaction=True)

CHARACTERS = [("Mina", "a girl with a red umbrella"), ("Bori", "a sleepy orange cat")]


class BusyStoryWriter(StoryWriter):
    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        yield "Once upon"
        raise AdapterError("The storyteller is busy right now; try again in a moment.")


def start(user: Any, pages: int = 3) -> Any:
    return start_book_with_child(user, characters=CHARACTERS, page_count=pages, language="en")


async def make(user: Any, draft_id: str, number: int, child_input: str = "they find a blue door") -> Any:
    return await services.make_next_page(
        user_id=user.pk, draft_id=draft_id, page_number=number, child_input=child_input
    )


async def made_book(user: Any, pages: int = 2) -> Any:
    draft = await sync_to_async(start)(user, pages)
    for number in range(1, pages + 1):
        draft = await make(user, draft.draft_id, number, f"idea number {number}")
    return draft


def test_start_book_stores_a_json_draft_in_the_cache(parent: Any) -> None:
    draft = start(parent)
    stored = cache.get(f"draft:user:{parent.pk}")
    assert isinstance(stored, dict)
    assert stored["state"] == "bookInProgress"
    assert [c["name"] for c in stored["characters"]] == ["Mina", "Bori"]
    assert drafts.current(parent.pk) == draft


def test_one_book_in_progress_per_user(parent: Any, other_parent: Any) -> None:
    start(parent)
    with pytest.raises(IllegalMove, match="already have a book in progress"):
        start(parent)
    start(other_parent)  # another family is not affected


def test_start_book_refuses_bad_input_and_stores_nothing(parent: Any) -> None:
    with pytest.raises(InvalidBook):
        start_book_with_child(parent, characters=[("", "nameless")], page_count=3, language="en")
    assert drafts.current(parent.pk) is None


def test_draft_ttl_comes_from_settings(parent: Any, settings: Any) -> None:
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "DRAFT_TTL_SECONDS": 1}
    draft = start(parent)
    time.sleep(2.1)
    assert drafts.current(parent.pk) is None
    with pytest.raises(DraftExpired, match="Start a new one"):
        drafts.load(parent.pk, draft.draft_id)


def test_a_save_keeps_the_drafts_id_under_its_child_for_as_long_as_the_draft(parent: Any) -> None:
    # Deleting a child finds its drafts' pictures through that list: it must outlive each save.
    draft = start(parent)
    child_list = f"draft:child:{draft.child_id}"
    cache.set(child_list, [draft.draft_id], timeout=1)

    drafts.save(draft)
    time.sleep(1.5)

    assert drafts.draft_ids_of_child(draft.child_id) == [draft.draft_id]
    assert drafts.load(parent.pk, draft.draft_id) == draft


def test_loading_a_draft_keeps_it_unless_the_step_saves_it_anyway(parent: Any, settings: Any) -> None:
    draft = start(parent)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "DRAFT_TTL_SECONDS": 1}
    drafts.load(parent.pk, draft.draft_id, touch=False)  # the 72 hours of its last save stand
    time.sleep(1.5)
    assert drafts.load(parent.pk, draft.draft_id) == draft  # and now it has one second
    time.sleep(1.5)
    assert drafts.current(parent.pk) is None


def test_another_users_draft_is_not_found(parent: Any, other_parent: Any) -> None:
    draft = start(parent)
    with pytest.raises(DraftNotFound):
        drafts.load(other_parent.pk, draft.draft_id)


async def test_make_page_writes_draws_and_asks(parent: Any) -> None:
    draft = await sync_to_async(start)(parent)
    draft = await make(parent, draft.draft_id, 1, "a dragon sneezes")
    page = draft.pages[0]
    assert draft.state is BookState.IN_PROGRESS
    assert "a dragon sneezes" in page.text
    assert page.question.endswith("?")
    assert page.picture.startswith(f"drafts/{draft.draft_id}/")
    data = await sync_to_async(pictures.read)(page.picture)
    assert data.startswith(b"\x89PNG")
    stored = await sync_to_async(drafts.current)(parent.pk)
    assert stored == draft


async def test_the_last_page_has_no_question_and_the_book_is_done(parent: Any) -> None:
    draft = await made_book(parent, pages=2)
    assert draft.state is BookState.DONE
    assert draft.pages[-1].question == ""
    assert "The end." in draft.pages[-1].text


async def test_page_out_of_order_is_refused(parent: Any) -> None:
    draft = await sync_to_async(start)(parent)
    with pytest.raises(IllegalMove, match="next page of this book is page 1"):
        await make(parent, draft.draft_id, 2)
    assert not await sync_to_async(GenerationLock.is_held)(parent.pk)


async def test_second_generation_at_once_is_refused_and_runs_once(parent: Any) -> None:
    draft = await sync_to_async(start)(parent)
    results = await asyncio.gather(
        make(parent, draft.draft_id, 1, "first idea"),
        make(parent, draft.draft_id, 1, "second idea"),
        return_exceptions=True,
    )
    refused = [r for r in results if isinstance(r, AlreadyGenerating)]
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(refused) == 1 and len(made) == 1
    stored = await sync_to_async(drafts.current)(parent.pk)
    assert stored is not None and len(stored.pages) == 1


async def test_upstream_failure_leaves_the_draft_as_it_was(parent: Any, settings: Any) -> None:
    draft = await made_book_partly(parent)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": f"{__name__}.BusyStoryWriter"}
    with pytest.raises(PageFailed, match="busy right now") as failure:
        await make(parent, draft.draft_id, 2, "a storm comes")
    assert failure.value.status == 502
    stored = await sync_to_async(drafts.current)(parent.pk)
    assert stored is not None
    assert stored.state is BookState.IN_PROGRESS
    assert stored.pages == draft.pages
    assert stored.pending_input == "a storm comes"
    assert "busy right now" in stored.last_error
    assert not await sync_to_async(GenerationLock.is_held)(parent.pk)
    # and the same page can be made again once the storyteller is back
    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.offline.OfflineStoryWriter",
    }
    again = await make(parent, draft.draft_id, 2, "a storm comes")
    assert len(again.pages) == 2 and again.last_error == ""


async def made_book_partly(user: Any) -> Any:
    draft = await sync_to_async(start)(user, 3)
    return await make(user, draft.draft_id, 1)


async def test_a_run_interrupted_by_a_restart_can_be_retried(parent: Any) -> None:
    draft = await made_book_partly(parent)
    # A server died mid-page: the draft says "generating" but no one holds the lock any more.
    draft.begin_page(page_number=2, child_input="lost in the crash")
    await sync_to_async(drafts.save)(draft)
    again = await make(parent, draft.draft_id, 2, "lost in the crash")
    assert [p.number for p in again.pages] == [1, 2]


async def test_parent_writes_a_page_and_it_is_still_illustrated(parent: Any) -> None:
    draft = await sync_to_async(start)(parent)
    draft = await services.write_page_yourself(
        user_id=parent.pk, draft_id=draft.draft_id, page_number=1, text="Mina opened the gate.", question=""
    )
    page = draft.pages[0]
    assert (page.text, page.source) == ("Mina opened the gate.", PageSource.PARENT)
    assert page.question.endswith("?")  # asked by the question writer when the parent gives none
    assert page.picture


def test_edit_page_keeps_the_picture(parent: Any) -> None:
    draft = start(parent)
    draft = asyncio.run(make(parent, draft.draft_id, 1))
    edited = services.edit_page(
        user_id=parent.pk, draft_id=draft.draft_id, page_number=1, text="Better words.", question="And then?"
    )
    assert edited.pages[0].text == "Better words."
    assert edited.pages[0].picture == draft.pages[0].picture
    assert drafts.current(parent.pk) == edited


def test_edit_while_a_page_is_made_is_refused(parent: Any) -> None:
    draft = start(parent)
    draft = asyncio.run(make(parent, draft.draft_id, 1))
    GenerationLock(parent.pk).acquire()
    with pytest.raises(AlreadyGenerating):
        services.edit_page(user_id=parent.pk, draft_id=draft.draft_id, page_number=1, text="x", question=None)


def test_finish_before_the_last_page_is_refused(parent: Any) -> None:
    draft = start(parent)
    with pytest.raises(IllegalMove, match="3 more page"):
        services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="Too soon")
    assert not Book.objects.exists()


def test_finish_keeps_the_book_and_drops_the_draft(parent: Any) -> None:
    draft = asyncio.run(made_book(parent, pages=2))
    book = services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="The Blue Door")
    assert book.title == "The Blue Door"
    assert [c.name for c in book.characters.all()] == ["Mina", "Bori"]
    pages = list(book.pages.all())
    assert [p.number for p in pages] == [1, 2]
    assert [p.text for p in pages] == [p.text for p in draft.pages]
    for page in pages:
        assert page.picture.name == f"books/{book.pk}/page-{page.number}.png"
        assert pictures.read(page.picture.name).startswith(b"\x89PNG")
    assert drafts.current(parent.pk) is None
    for page in draft.pages:
        assert not pictures.storage().exists(page.picture)


def test_finish_keeps_draft_when_a_picture_copy_fails(parent: Any, monkeypatch: Any) -> None:
    draft = asyncio.run(made_book(parent, pages=2))
    real_copy = pictures.copy
    copied: list[str] = []

    def copy_then_fail(source: str, target: str) -> str:
        if copied:
            raise OSError("the bucket is unreachable")
        copied.append(real_copy(source, target))
        return copied[-1]

    monkeypatch.setattr(pictures, "copy", copy_then_fail)
    with pytest.raises(OSError):
        services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="The Blue Door")
    assert not Book.objects.exists() and not Page.objects.exists()
    assert drafts.current(parent.pk) == draft
    assert all(pictures.storage().exists(p.picture) for p in draft.pages)
    assert copied and not pictures.storage().exists(copied[0])  # the copy made before the failure is gone

    monkeypatch.setattr(pictures, "copy", real_copy)
    book = services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="The Blue Door")
    assert book.pages.count() == 2


def test_finish_keeps_draft_when_the_database_fails(parent: Any, monkeypatch: Any) -> None:
    draft = asyncio.run(made_book(parent, pages=2))

    def broken_bulk_create(*args: Any, **kwargs: Any) -> None:
        raise DatabaseError("the database went away")

    monkeypatch.setattr(Page.objects, "bulk_create", broken_bulk_create)
    with pytest.raises(DatabaseError):
        services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="The Blue Door")
    assert not Book.objects.exists()
    assert drafts.current(parent.pk) == draft
    monkeypatch.undo()
    assert (
        services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="The Blue Door").pages.count()
        == 2
    )


def test_finish_is_safe_to_retry_after_the_draft_could_not_be_dropped(parent: Any, monkeypatch: Any) -> None:
    draft = asyncio.run(made_book(parent, pages=2))

    def cache_down(_: Any) -> None:
        raise ConnectionError("cache unreachable")

    monkeypatch.setattr(drafts, "delete", cache_down)
    with pytest.raises(ConnectionError):
        services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="Kept")
    monkeypatch.undo()
    book = services.finish_book(user_id=parent.pk, draft_id=draft.draft_id, title="Kept")
    assert Book.objects.count() == 1 and book.pages.count() == 2


def test_another_user_cannot_finish_or_discard(parent: Any, other_parent: Any) -> None:
    draft = asyncio.run(made_book(parent, pages=2))
    with pytest.raises(DraftNotFound):
        services.finish_book(user_id=other_parent.pk, draft_id=draft.draft_id, title="Mine now")
    with pytest.raises(DraftNotFound):
        services.discard_draft(user_id=other_parent.pk, draft_id=draft.draft_id)
    assert drafts.current(parent.pk) == draft


def test_discard_removes_the_draft_and_its_pictures(parent: Any) -> None:
    draft = start(parent)
    draft = asyncio.run(make(parent, draft.draft_id, 1))
    services.discard_draft(user_id=parent.pk, draft_id=draft.draft_id)
    assert drafts.current(parent.pk) is None
    assert not pictures.storage().exists(draft.pages[0].picture)
    with pytest.raises(DraftNotFound):
        drafts.load(parent.pk, draft.draft_id)


@pytest.mark.parametrize(
    ("script", "sentence"),
    [
        ({"status": 429}, "busy right now"),
        ({"status": 500}, "had a problem on its side"),
        ({"delay": 3.0}, "too long"),
        ({"stop_after": 2}, "broke off"),
    ],
    ids=["429", "500", "timeout", "cut-stream"],
)
async def test_openai_failures_leave_the_draft_as_it_was(
    parent: Any, settings: Any, fake_openai: Any, script: dict[str, Any], sentence: str
) -> None:
    from tests.fake_openai import point_settings_at

    draft = await made_book_partly(parent)
    point_settings_at(settings, fake_openai, timeout=1.0)
    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.openai.OpenAIStoryWriter",
        "QUESTION_WRITER": "books.adapters.openai.OpenAIQuestionWriter",
        "ILLUSTRATOR": "books.adapters.openai.OpenAIIllustrator",
    }
    fake_openai.script("chat", **script)
    with pytest.raises(PageFailed) as failure:
        await make(parent, draft.draft_id, 2, "the kite flies to the moon")
    assert sentence in str(failure.value).lower()
    stored = await sync_to_async(drafts.current)(parent.pk)
    assert stored is not None and stored.pages == draft.pages and stored.state is BookState.IN_PROGRESS
    assert stored.pending_input == "the kite flies to the moon"
    again = await make(parent, draft.draft_id, 2, "the kite flies to the moon")  # the server answers again
    assert len(again.pages) == 2
    assert "the kite flies to the moon" in str(fake_openai.requests_to("chat")[-2]["messages"])
