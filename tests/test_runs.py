"""Page runs: stopping, the heartbeat, interrupted and too-slow runs, failed parts made again.

Use cases on the real cache, database and picture store; the live state read through the
hub (local or Redis), as a socket or a page view would read it.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache

from books import drafts, pictures, services
from books.domain import BookDraft, BookState, IllegalMove
from books.drafts import GenerationLock
from books.ports import AdapterError, Picture, StoryContext, StoryWriter, WordExplainer
from books.services import PageFailed
from streaming import live, runs
from streaming.live import Delta, LivePublisher, LiveSnapshot, RunState
from streaming.sections import SectionStatus
from tests.fake_openai import FakeOpenAI, point_settings_at, tiny_png
from tests.live_fixtures import no_run_left_behind  # noqa: F401 - autouse for this module
from tests.people import start_book_with_child

pytestmark = pytest.mark.django_db(transaction=True)

PATIENCE_SECONDS = 15
CHILD_INPUT = "the moon comes down to play"


class EndlessStoryWriter(StoryWriter):
    """Starts the page, then never finishes it (until it is stopped)."""

    started: asyncio.Event

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        yield "Once upon a time "
        self.started.set()
        await asyncio.sleep(3600)
        yield "never."  # pragma: no cover


class ShyWordExplainer(WordExplainer):
    async def explain(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        raise AdapterError("The new words could not be found; try again.")
        yield ""  # pragma: no cover - makes this an async generator


@pytest.fixture
def endless_story(settings: Any) -> asyncio.Event:
    """Set once the endless storyteller has begun the page."""
    EndlessStoryWriter.started = asyncio.Event()
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": f"{__name__}.EndlessStoryWriter"}
    return EndlessStoryWriter.started


@pytest.fixture
def heartbeats(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Quick heartbeats; the event is set at each one (they run in a worker thread)."""
    beat = threading.Event()
    real_beat = runs._beat

    def counted_beat(lock: GenerationLock) -> tuple[bool, bool]:
        result = real_beat(lock)
        beat.set()
        return result

    monkeypatch.setattr(runs, "HEARTBEAT_SECONDS", 0.05)
    monkeypatch.setattr(runs, "_beat", counted_beat)
    return beat


@pytest.fixture
def openai_storyteller(settings: Any, fake_openai: FakeOpenAI) -> Iterator[FakeOpenAI]:
    """Every section made by the OpenAI adapters, against the fake server."""
    point_settings_at(settings, fake_openai, timeout=10.0)
    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.openai.OpenAIStoryWriter",
        "QUESTION_WRITER": "books.adapters.openai.OpenAIQuestionWriter",
        "ILLUSTRATOR": "books.adapters.openai.OpenAIIllustrator",
        "WORD_EXPLAINER": "books.adapters.openai.OpenAIWordExplainer",
    }
    yield fake_openai


async def a_book(user: Any, pages: int = 3) -> BookDraft:
    return await sync_to_async(start_book_with_child)(
        user, characters=[("Mina", "a girl with a red umbrella")], page_count=pages, language="en"
    )


async def start_page(user: Any, draft: BookDraft, number: int = 1) -> asyncio.Task[BookDraft]:
    return await services.start_next_page(
        user_id=user.pk, draft_id=draft.draft_id, page_number=number, child_input=CHILD_INPUT
    )


async def stored(user: Any) -> BookDraft:
    draft = await sync_to_async(drafts.current)(user.pk)
    assert draft is not None
    return draft


async def snapshot_of(draft: BookDraft) -> LiveSnapshot:
    found = await live.hub().snapshot(draft.draft_id)
    assert found is not None
    return found


async def lock_is_held(user: Any) -> bool:
    return await sync_to_async(GenerationLock.is_held)(user.pk)


async def ended(run: asyncio.Task[Any]) -> None:
    """Wait for a run to end, however it ends."""
    await asyncio.wait_for(asyncio.wait([run]), timeout=PATIENCE_SECONDS)


async def next_beat(beat: threading.Event) -> None:
    beat.clear()
    assert await asyncio.to_thread(beat.wait, PATIENCE_SECONDS)


def statuses(snapshot: LiveSnapshot) -> dict[str, SectionStatus]:
    return {name: state.status for name, state in snapshot.sections.items()}


# -- stopping -------------------------------------------------------------------------------------


async def test_stopping_a_page_puts_the_book_back_with_the_childs_words(
    parent: Any, endless_story: asyncio.Event
) -> None:
    draft = await a_book(parent)
    run = await start_page(parent, draft)
    await asyncio.wait_for(endless_story.wait(), timeout=PATIENCE_SECONDS)

    await services.stop_page(user_id=parent.pk, draft_id=draft.draft_id)
    await ended(run)

    assert run.cancelled()
    book = await stored(parent)
    assert book.state is BookState.IN_PROGRESS and book.pages == []
    assert book.pending_input == CHILD_INPUT
    assert "was stopped" in book.last_error
    snapshot = await snapshot_of(draft)
    assert snapshot.state is RunState.STOPPED
    assert snapshot.sections["story"].status is SectionStatus.UNHEALTHY
    assert not await lock_is_held(parent)


async def test_stopping_when_no_page_is_being_made_is_refused(parent: Any) -> None:
    draft = await a_book(parent)
    with pytest.raises(IllegalMove, match="No page is being made"):
        await services.stop_page(user_id=parent.pk, draft_id=draft.draft_id)


async def test_a_stop_asked_through_another_process_reaches_the_run_by_its_heartbeat(
    parent: Any, endless_story: asyncio.Event, heartbeats: threading.Event
) -> None:
    draft = await a_book(parent)
    run = await start_page(parent, draft)
    await asyncio.wait_for(endless_story.wait(), timeout=PATIENCE_SECONDS)
    # The process answering the stop is not the one holding the run: it knows it only by the cache.
    del runs._running[draft.draft_id]
    await next_beat(heartbeats)

    await services.stop_page(user_id=parent.pk, draft_id=draft.draft_id)
    await ended(run)

    assert run.cancelled()
    assert (await snapshot_of(draft)).state is RunState.STOPPED
    book = await stored(parent)
    assert book.state is BookState.IN_PROGRESS and book.pending_input == CHILD_INPUT
    assert not await lock_is_held(parent)


async def test_the_heartbeat_cancels_the_run_when_a_stop_flag_appears(
    parent: Any, heartbeats: threading.Event
) -> None:
    lock = GenerationLock(parent.pk)
    await sync_to_async(lock.acquire)()
    run = asyncio.create_task(asyncio.sleep(3600))
    heartbeat = asyncio.create_task(runs.keep_alive(lock, run))
    await next_beat(heartbeats)
    assert not run.done()  # beats alone leave the run alone

    await runs.request_stop("a-draft", user_id=parent.pk)
    await ended(run)
    assert run.cancelled()
    await asyncio.wait_for(heartbeat, timeout=PATIENCE_SECONDS)
    await sync_to_async(lock.release)()


async def test_a_stop_asked_before_the_first_heartbeat_is_not_lost(
    parent: Any, heartbeats: threading.Event
) -> None:
    lock = GenerationLock(parent.pk)
    await sync_to_async(lock.acquire)()
    run = asyncio.create_task(asyncio.sleep(3600))
    await runs.request_stop("a-draft", user_id=parent.pk)  # another process, before the run's first beat

    heartbeat = asyncio.create_task(runs.keep_alive(lock, run))
    await ended(run)
    assert run.cancelled()
    await asyncio.wait_for(heartbeat, timeout=PATIENCE_SECONDS)
    await sync_to_async(lock.release)()


async def test_a_stop_for_an_earlier_run_does_not_stop_the_next_one(
    parent: Any, heartbeats: threading.Event
) -> None:
    earlier = GenerationLock(parent.pk)
    await sync_to_async(earlier.acquire)()
    await runs.request_stop("a-draft", user_id=parent.pk)  # arrives as the earlier run ends by itself
    await sync_to_async(earlier.release)()

    lock = GenerationLock(parent.pk)
    await sync_to_async(lock.acquire)()
    run = asyncio.create_task(asyncio.sleep(3600))
    heartbeat = asyncio.create_task(runs.keep_alive(lock, run))
    await next_beat(heartbeats)
    await next_beat(heartbeats)

    assert not run.done()
    await runs.cancel_quietly(heartbeat)
    await runs.cancel_quietly(run)
    await sync_to_async(lock.release)()


async def test_the_heartbeat_cancels_a_run_whose_lock_was_lost(
    parent: Any, heartbeats: threading.Event
) -> None:
    lock = GenerationLock(parent.pk)
    await sync_to_async(lock.acquire)()
    run = asyncio.create_task(asyncio.sleep(3600))
    heartbeat = asyncio.create_task(runs.keep_alive(lock, run))
    await next_beat(heartbeats)

    await sync_to_async(cache.delete)(lock.key)  # lapsed, as when this process stalled too long
    await ended(run)
    assert run.cancelled()
    await asyncio.wait_for(heartbeat, timeout=PATIENCE_SECONDS)


# -- runs that went wrong -------------------------------------------------------------------------


async def a_run_whose_server_went_away(user: Any) -> tuple[BookDraft, str]:
    """What a server leaves behind when it dies mid-page: a draft "generating", a running
    snapshot with half a story and a finished picture, and a lock that lapsed."""
    draft = await a_book(user)
    draft.begin_page(page_number=1, child_input=CHILD_INPUT)
    await sync_to_async(drafts.save)(draft)
    picture = await sync_to_async(pictures.save_draft_picture)(
        draft_id=draft.draft_id, page_number=1, picture=Picture(tiny_png("moon"))
    )
    snapshot = LiveSnapshot.start(
        draft_id=draft.draft_id, page_number=1, run_id="gone", child_input=CHILD_INPUT, is_last_page=False
    )
    publisher = LivePublisher(live.hub(), snapshot)
    publisher.emit("", "run", status=RunState.RUNNING)
    publisher.emit("story", "status", status=SectionStatus.STREAMING)
    publisher.emit("story", "text", text="Once upon a ti")
    publisher.emit("picture", "status", status=SectionStatus.STREAMING)
    publisher.emit("picture", "picture", picture=picture)
    publisher.emit("picture", "status", status=SectionStatus.COMPLETE)
    await publisher.close()
    return draft, picture


async def test_a_run_whose_server_went_away_is_shown_as_interrupted_and_can_be_made_again(
    parent: Any,
) -> None:
    draft, picture = await a_run_whose_server_went_away(parent)

    book, snapshot = await sync_to_async(services.live_page)(user_id=parent.pk, draft_id=draft.draft_id)

    assert book.state is BookState.IN_PROGRESS and book.pages == []
    assert book.pending_input == CHILD_INPUT
    assert "interrupted" in book.last_error
    assert snapshot is not None and snapshot.state is RunState.INTERRUPTED
    assert statuses(snapshot) == {
        "story": SectionStatus.UNHEALTHY,
        "picture": SectionStatus.COMPLETE,
        "question": SectionStatus.UNHEALTHY,
        "new_words": SectionStatus.UNHEALTHY,
    }
    assert "interrupted" in snapshot.sections["story"].reason
    assert (await snapshot_of(draft)).state is RunState.INTERRUPTED  # every watcher reads the same

    run = await services.retry_sections(
        user_id=parent.pk, draft_id=draft.draft_id, sections=set(snapshot.failed_sections)
    )
    kept = await run
    page = kept.pages[0]
    assert page.picture == picture  # the part that was finished is not made again
    assert page.text and page.text != "Once upon a ti"
    assert page.question.endswith("?")
    assert page.child_input == CHILD_INPUT
    assert kept.last_error == ""


async def test_a_page_view_that_read_the_book_just_before_its_run_ended_keeps_the_new_page(
    parent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    draft = await a_book(parent)
    as_it_was_while_making = BookDraft.from_dict(draft.to_dict())
    as_it_was_while_making.begin_page(page_number=1, child_input=CHILD_INPUT)
    run = await start_page(parent, draft)
    await ended(run)
    real_load = drafts.load
    reads: list[str] = []

    def load_as_the_view_saw_it(user_id: int, draft_id: str) -> BookDraft:
        # The view's first read came just before the run kept its page and let go of the lock.
        reads.append(draft_id)
        return as_it_was_while_making if len(reads) == 1 else real_load(user_id, draft_id)

    monkeypatch.setattr(drafts, "load", load_as_the_view_saw_it)
    book, snapshot = await sync_to_async(services.live_page)(user_id=parent.pk, draft_id=draft.draft_id)

    assert len(reads) == 2  # it read again under the lock instead of trusting the stale copy
    assert book.state is BookState.IN_PROGRESS and len(book.pages) == 1
    assert book.last_error == ""
    assert snapshot is not None and snapshot.state is RunState.COMPLETE
    monkeypatch.setattr(drafts, "load", real_load)
    assert len((await stored(parent)).pages) == 1


async def test_the_book_is_not_left_locked_when_the_last_frame_cannot_be_sent(
    parent: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = live.hub()
    real_publish = hub.publish

    async def publish_until_the_end(snapshot: LiveSnapshot, deltas: list[Delta]) -> None:
        if any(delta.kind == "run" and delta.status != RunState.RUNNING for delta in deltas):
            raise ConnectionError("the live hub went away")
        await real_publish(snapshot, deltas)

    monkeypatch.setattr(hub, "publish", publish_until_the_end)
    draft = await a_book(parent)
    run = await start_page(parent, draft)
    await ended(run)

    assert isinstance(run.exception(), ConnectionError)
    assert not await lock_is_held(parent)
    assert len((await stored(parent)).pages) == 1  # the page was kept before the frame failed


async def test_a_page_that_takes_too_long_is_ended_and_can_be_made_again(
    parent: Any, settings: Any, endless_story: asyncio.Event
) -> None:
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "GENERATION_TIMEOUT_SECONDS": 1}
    draft = await a_book(parent)

    with pytest.raises(TimeoutError):
        await services.make_next_page(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input=CHILD_INPUT
        )

    snapshot = await snapshot_of(draft)
    assert snapshot.state is RunState.NEEDS_ATTENTION
    assert "took too long" in snapshot.reason
    assert snapshot.sections["story"].status is SectionStatus.UNHEALTHY
    book = await stored(parent)
    assert book.state is BookState.IN_PROGRESS and book.pages == []
    assert book.pending_input == CHILD_INPUT and "took too long" in book.last_error
    assert not await lock_is_held(parent)

    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.offline.OfflineStoryWriter",
        "GENERATION_TIMEOUT_SECONDS": 300,
    }
    again = await services.make_next_page(
        user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input=CHILD_INPUT
    )
    assert len(again.pages) == 1


# -- parts that fail, made again on their own -----------------------------------------------------


async def test_a_failed_picture_leaves_the_book_as_it_was_and_its_retry_keeps_the_story(
    parent: Any, openai_storyteller: FakeOpenAI
) -> None:
    fake = openai_storyteller
    fake.script("chat", chunk_delay=0.01)  # the story streams word by word
    fake.script("images", delay=0.1, status=500)  # the picture fails after the others began
    draft = await a_book(parent)

    with pytest.raises(PageFailed, match="the picture"):
        await services.make_next_page(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input=CHILD_INPUT
        )

    snapshot = await snapshot_of(draft)
    assert statuses(snapshot) == {
        "story": SectionStatus.COMPLETE,
        "picture": SectionStatus.UNHEALTHY,
        "question": SectionStatus.COMPLETE,
        "new_words": SectionStatus.COMPLETE,
    }
    assert snapshot.state is RunState.NEEDS_ATTENTION
    book = await stored(parent)
    assert book.pages == [] and book.state is BookState.IN_PROGRESS
    assert book.pending_input == CHILD_INPUT
    story, question = snapshot.sections["story"].text.strip(), snapshot.sections["question"].text.strip()
    chat_calls = len(fake.requests_to("chat"))

    run = await services.retry_sections(user_id=parent.pk, draft_id=draft.draft_id, sections={"picture"})
    kept = await run

    page = kept.pages[0]
    assert (page.text, page.question) == (story, question)
    assert (await sync_to_async(pictures.read)(page.picture)).startswith(b"\x89PNG")
    assert len(fake.requests_to("chat")) == chat_calls  # no words were asked for again
    assert (await snapshot_of(draft)).state is RunState.COMPLETE


async def test_only_a_failed_part_can_be_made_again(parent: Any, openai_storyteller: FakeOpenAI) -> None:
    openai_storyteller.script("images", status=500)
    draft = await a_book(parent)
    with pytest.raises(PageFailed):
        await services.make_next_page(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input=CHILD_INPUT
        )
    with pytest.raises(IllegalMove, match="Only a part that could not be made"):
        await services.retry_sections(user_id=parent.pk, draft_id=draft.draft_id, sections={"story"})
    assert not await lock_is_held(parent)


async def test_failed_new_words_do_not_hold_the_page_back_and_can_be_made_later(
    parent: Any, settings: Any
) -> None:
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "WORD_EXPLAINER": f"{__name__}.ShyWordExplainer"}
    draft = await a_book(parent)

    made = await services.make_next_page(
        user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input=CHILD_INPUT
    )

    assert len(made.pages) == 1 and made.pages[0].new_words == ""
    snapshot = await snapshot_of(draft)
    assert snapshot.state is RunState.COMPLETE
    assert snapshot.failed_sections == ["new_words"]
    assert "could not be found" in snapshot.sections["new_words"].reason

    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "WORD_EXPLAINER": "books.adapters.offline.OfflineWordExplainer",
    }
    run = await services.retry_sections(user_id=parent.pk, draft_id=draft.draft_id, sections={"new_words"})
    kept = await run
    assert len(kept.pages) == 1
    page = kept.pages[0]
    assert page.new_words
    assert (page.text, page.question, page.picture) == (
        made.pages[0].text,
        made.pages[0].question,
        made.pages[0].picture,
    )
    assert statuses(await snapshot_of(draft))["new_words"] is SectionStatus.COMPLETE


# -- numbering ------------------------------------------------------------------------------------


class FrameWatcher:
    """What a socket's process receives from the hub: every delta, in the order it came."""

    def __init__(self) -> None:
        self.deltas: list[Delta] = []
        self.arrived = asyncio.Event()

    async def __call__(self, deltas: list[Delta]) -> None:
        self.deltas.extend(deltas)
        self.arrived.set()

    async def wait_for_seq(self, seq: int) -> None:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while not self.deltas or self.deltas[-1].seq < seq:
                self.arrived.clear()
                await self.arrived.wait()

    @property
    def seqs(self) -> list[int]:
        return [delta.seq for delta in self.deltas]


async def test_deltas_are_numbered_one_by_one_across_a_books_runs(
    parent: Any, openai_storyteller: FakeOpenAI
) -> None:
    openai_storyteller.script("chat", chunk_delay=0.01)
    openai_storyteller.script("images", status=500)
    draft = await a_book(parent)
    watcher = FrameWatcher()
    await live.hub().watch(draft.draft_id, watcher)

    with pytest.raises(PageFailed):
        await start_and_wait(parent, draft)
    run = await services.retry_sections(user_id=parent.pk, draft_id=draft.draft_id, sections={"picture"})
    await run
    await start_and_wait(parent, draft, number=2)

    last = (await snapshot_of(draft)).seq
    await watcher.wait_for_seq(last)
    await live.hub().unwatch(draft.draft_id, watcher)
    assert watcher.seqs == list(range(1, last + 1))
    runs_started = [d for d in watcher.deltas if d.kind == "run" and d.status == RunState.RUNNING]
    assert len(runs_started) == 3


async def start_and_wait(user: Any, draft: BookDraft, number: int = 1) -> BookDraft:
    run = await start_page(user, draft, number)
    return await run
