"""The live tabs' socket, through the real ASGI application (origin check, session auth, routing).

A socket shows what a browser would: the snapshot's HTML, then out-of-band fragments.
``SocketView`` puts the story tab together the way htmx does (the snapshot replaces
``#live``, each piece is appended to ``#section-story-text``), so the tests compare what
a family would read on screen with the page that was kept.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from autobahn.exception import Disconnected
from channels.testing import WebsocketCommunicator
from django.test import AsyncClient, Client
from django.urls import reverse

from books import drafts, services
from books.domain import BookDraft
from books.ports import StoryContext, StoryWriter
from littlewriter.asgi import application
from streaming import live, runs
from streaming.consumers import CLOSE_NOT_SIGNED_IN, CLOSE_NOT_YOURS, PageConsumer
from streaming.live import Delta, LiveSnapshot, LocalHub
from tests.fake_openai import FakeOpenAI, point_settings_at
from tests.live_fixtures import no_run_left_behind  # noqa: F401 - autouse for this module
from tests.people import start_book_with_child

pytestmark = pytest.mark.django_db(transaction=True)

ORIGIN = (b"origin", b"http://localhost")
# Every frame of a run arrives well within this; a test waits for events, never for a time.
PATIENCE_SECONDS = 15

STORY_PIECES = [
    "Mina & Bori ",
    "found a ",
    "tiny door ",
    "under the ",
    "old oak. ",
    "“Who's ",
    "there?” ",
    "asked Bori, ",
    "and his tail ",
    "twitched ",
    "with <joy>.",
]
STORY = "".join(STORY_PIECES)

PIECE = re.compile(r'<span hx-swap-oob="beforeend:#section-story-text">(.*?)</span>', re.S)
SNAPSHOT_STORY = re.compile(r'id="section-story-text"[^>]*>(.*?)</div>', re.S)
BADGE = re.compile(r'id="badge-(\w+)" class="badge is-(\w+)"')


class Pace:
    """Where the test's storyteller stops (before the piece at each index) until told to go on."""

    def __init__(self, *stops: int) -> None:
        self.stops = {index: (asyncio.Event(), asyncio.Event()) for index in stops}

    async def reached(self, index: int) -> None:
        await asyncio.wait_for(self.stops[index][0].wait(), timeout=PATIENCE_SECONDS)

    def go_on(self, index: int) -> None:
        self.stops[index][1].set()

    async def before(self, index: int) -> None:
        if index in self.stops:
            reached, go_on = self.stops[index]
            reached.set()
            await asyncio.wait_for(go_on.wait(), timeout=PATIENCE_SECONDS)


PACE = Pace()


class PacedStoryWriter(StoryWriter):
    """Streams ``STORY_PIECES`` a little apart, stopping where the test's ``PACE`` says."""

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        for index, piece in enumerate(STORY_PIECES):
            await PACE.before(index)
            await asyncio.sleep(0.01)
            yield piece


def paced(settings: Any, monkeypatch: pytest.MonkeyPatch, *stops: int) -> Pace:
    pace = Pace(*stops)
    monkeypatch.setattr(f"{__name__}.PACE", pace)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": f"{__name__}.PacedStoryWriter"}
    return pace


class SocketView:
    """One browser tab on the socket: every frame it got, and its story tab as htmx shows it."""

    def __init__(self, communicator: WebsocketCommunicator) -> None:
        self.communicator = communicator
        self.frames: list[str] = []
        self.story = ""

    async def next_frame(self) -> str:
        frame: str = await self.communicator.receive_from(timeout=PATIENCE_SECONDS)
        self.frames.append(frame)
        whole = SNAPSHOT_STORY.search(frame)
        if whole:
            self.story = html.unescape(whole.group(1))
        self.story += "".join(html.unescape(piece) for piece in PIECE.findall(frame))
        return frame

    async def read_until(self, marker: str) -> None:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while marker not in await self.next_frame():
                pass

    async def read_until_story(self, text: str) -> None:
        async with asyncio.timeout(PATIENCE_SECONDS):
            while self.story != text:
                await self.next_frame()

    def badges(self, section: str) -> list[str]:
        """The badge of ``section`` in every frame that showed it, in order, repeats folded."""
        shown: list[str] = []
        for frame in self.frames:
            for name, status in BADGE.findall(frame):
                if name == section and (not shown or shown[-1] != status):
                    shown.append(status)
        return shown

    def last_badges(self) -> dict[str, str]:
        return {name: status for frame in self.frames for name, status in BADGE.findall(frame)}

    async def close(self) -> None:
        await self.communicator.disconnect()


def session_cookie(user: Any) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


def socket_to(draft_id: str, headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    return WebsocketCommunicator(application, f"/ws/drafts/{draft_id}/", headers=headers)


async def open_socket(draft_id: str, cookie: bytes) -> SocketView:
    communicator = socket_to(draft_id, [ORIGIN, (b"cookie", cookie)])
    connected, _ = await communicator.connect(timeout=PATIENCE_SECONDS)
    assert connected
    return SocketView(communicator)


async def a_book(user: Any) -> BookDraft:
    return await sync_to_async(start_book_with_child)(
        user, characters=[("Mina", "a girl with a red umbrella")], page_count=3, language="en"
    )


async def start_page(user: Any, draft: BookDraft, child_input: str = "they find a door") -> Any:
    return await services.start_next_page(
        user_id=user.pk, draft_id=draft.draft_id, page_number=1, child_input=child_input
    )


async def kept_page_text(user: Any) -> str:
    kept = await sync_to_async(drafts.current)(user.pk)
    assert kept is not None and len(kept.pages) == 1
    return kept.pages[0].text


@pytest.fixture
def cookie(parent: Any) -> bytes:
    return session_cookie(parent)


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


# -- who may watch ------------------------------------------------------------------------------


async def test_an_anonymous_socket_is_closed(parent: Any) -> None:
    draft = await a_book(parent)
    communicator = socket_to(draft.draft_id, [ORIGIN])
    connected, code = await communicator.connect(timeout=PATIENCE_SECONDS)
    assert (connected, code) == (False, CLOSE_NOT_SIGNED_IN)


async def test_another_familys_socket_is_closed(parent: Any, other_parent: Any) -> None:
    draft = await a_book(parent)
    other_cookie = await sync_to_async(session_cookie)(other_parent)
    communicator = socket_to(draft.draft_id, [ORIGIN, (b"cookie", other_cookie)])
    connected, code = await communicator.connect(timeout=PATIENCE_SECONDS)
    assert (connected, code) == (False, CLOSE_NOT_YOURS)


@pytest.mark.parametrize("origin", [None, b"http://evil.example"], ids=["no-origin", "foreign-origin"])
async def test_a_socket_without_the_sites_origin_is_refused(
    parent: Any, cookie: bytes, origin: bytes | None
) -> None:
    draft = await a_book(parent)
    headers = [(b"cookie", cookie)] + ([(b"origin", origin)] if origin else [])
    connected, _ = await socket_to(draft.draft_id, headers).connect(timeout=PATIENCE_SECONDS)
    assert not connected


async def test_a_message_from_the_browser_gets_a_notice_and_the_socket_stays_open(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paced(settings, monkeypatch)
    draft = await a_book(parent)
    socket = await open_socket(draft.draft_id, cookie)
    for message in ("hello?", '{"HEADERS": {}, "child_input": "x"}', '{"drawn_at": true}', '["drawn_at"]'):
        await socket.communicator.send_to(text_data=message)
        notice = await socket.next_frame()
        assert 'id="live-notice"' in notice
        assert "only shows the page being made" in notice
    # Still open and still working: it shows a page made after the messages.
    await start_page(parent, draft)
    await socket.read_until('class="run-state is-complete"')
    await runs.settle(draft.draft_id)
    assert socket.story == STORY == await kept_page_text(parent)
    await socket.close()


async def test_a_book_swapped_in_at_an_older_frame_gets_the_snapshot_again(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """htmx swapped in a #book drawn before frames this socket already sent: they are sent again."""
    pace = paced(settings, monkeypatch, 5)
    draft = await a_book(parent)
    await start_page(parent, draft)
    await pace.reached(5)
    socket = await open_socket(draft.draft_id, cookie)
    await socket.read_until_story("".join(STORY_PIECES[:5]))

    await socket.communicator.send_to(
        text_data=json.dumps({"drawn_at": 1, "HEADERS": {"HX-Request": "true"}})
    )
    again = await socket.next_frame()
    assert '<section id="live"' in again and 'hx-swap-oob="true"' in again
    assert socket.story == "".join(STORY_PIECES[:5])  # the whole story so far, once

    pace.go_on(5)
    await socket.read_until('class="run-state is-complete"')
    await runs.settle(draft.draft_id)
    assert socket.story == STORY == await kept_page_text(parent)
    await socket.close()


async def test_a_book_swapped_in_at_the_frame_the_socket_is_at_needs_nothing(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paced(settings, monkeypatch)
    draft = await a_book(parent)
    await start_page(parent, draft)
    await runs.settle(draft.draft_id)
    socket = await open_socket(draft.draft_id, cookie)
    snapshot = await socket.next_frame()
    stored = await live.hub().snapshot(draft.draft_id)
    assert stored is not None and 'class="run-state is-complete"' in snapshot

    await socket.communicator.send_to(text_data=json.dumps({"drawn_at": stored.seq}))
    assert await socket.communicator.receive_nothing()
    await socket.communicator.send_to(text_data=json.dumps({"drawn_at": str(stored.seq)}))
    assert await socket.communicator.receive_nothing()
    await socket.close()


# -- what a watching family sees ---------------------------------------------------------------


async def test_a_socket_opened_mid_page_shows_the_snapshot_then_only_newer_pieces(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pace = paced(settings, monkeypatch, 4)
    draft = await a_book(parent)
    await start_page(parent, draft)
    await pace.reached(4)

    socket = await open_socket(draft.draft_id, cookie)
    snapshot = await socket.next_frame()
    assert 'id="live"' in snapshot
    for tab in ("story", "picture", "question", "new_words"):
        assert f'id="tab-{tab}"' in snapshot and f'id="panel-{tab}"' in snapshot
    assert STORY.startswith(socket.story)

    pace.go_on(4)
    await socket.read_until('class="run-state is-complete"')
    await runs.settle(draft.draft_id)
    assert socket.story == STORY  # nothing lost, nothing twice
    assert socket.story == await kept_page_text(parent)
    await socket.close()


async def test_a_reconnect_mid_page_still_ends_with_the_whole_story(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pace = paced(settings, monkeypatch, 3, 7)
    draft = await a_book(parent)
    await start_page(parent, draft)
    await pace.reached(3)
    first = await open_socket(draft.draft_id, cookie)
    pace.go_on(3)
    await pace.reached(7)
    await first.read_until_story("".join(STORY_PIECES[:7]))
    await first.close()  # the tab is reloaded while the page is being made

    again = await open_socket(draft.draft_id, cookie)
    await again.next_frame()
    assert again.story == "".join(STORY_PIECES[:7])
    pace.go_on(7)
    await again.read_until('class="run-state is-complete"')
    await runs.settle(draft.draft_id)
    assert again.story == STORY == await kept_page_text(parent)
    await again.close()


async def test_two_sockets_on_one_book_both_get_the_whole_story(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pace = paced(settings, monkeypatch, 2, 6)
    draft = await a_book(parent)
    await start_page(parent, draft)
    await pace.reached(2)
    early = await open_socket(draft.draft_id, cookie)
    pace.go_on(2)
    await pace.reached(6)
    late = await open_socket(draft.draft_id, cookie)
    pace.go_on(6)

    await asyncio.gather(
        early.read_until('class="run-state is-complete"'), late.read_until('class="run-state is-complete"')
    )
    await runs.settle(draft.draft_id)
    assert early.story == late.story == STORY == await kept_page_text(parent)
    await asyncio.gather(early.close(), late.close())


async def test_a_socket_opened_before_the_page_is_asked_for_sees_all_of_it(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    paced(settings, monkeypatch)
    draft = await a_book(parent)
    socket = await open_socket(draft.draft_id, cookie)
    assert await socket.communicator.receive_nothing()  # no page is being made yet

    await start_page(parent, draft)
    await socket.read_until('class="run-state is-complete"')
    await runs.settle(draft.draft_id)
    assert socket.story == STORY == await kept_page_text(parent)
    await socket.close()


async def test_the_story_badge_goes_from_streaming_to_complete(
    parent: Any, cookie: bytes, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pace = paced(settings, monkeypatch, 1)
    draft = await a_book(parent)
    await start_page(parent, draft)
    await pace.reached(1)
    socket = await open_socket(draft.draft_id, cookie)
    pace.go_on(1)
    await socket.read_until('class="run-state is-complete"')
    # The snapshot may predate the story's first frame (frames go out every 50 ms or so).
    shown = socket.badges("story")
    assert shown in (["streaming", "complete"], ["not_started", "streaming", "complete"])
    assert socket.last_badges() == {
        "story": "complete",
        "picture": "complete",
        "question": "complete",
        "new_words": "complete",
    }
    await socket.close()


async def test_the_socket_sends_the_book_with_the_new_page_once_it_is_made(
    parent: Any, cookie: bytes
) -> None:
    """In place of a fetch by the browser: the page in the list, the next question and box."""
    draft = await a_book(parent)
    socket = await open_socket(draft.draft_id, cookie)
    await (await start_page(parent, draft))
    await socket.read_until('class="run-state is-complete"')
    assert 'hx-get="/drafts/' not in socket.frames[-1]  # the run's last frame asks for nothing
    book = await socket.next_frame()

    kept = await sync_to_async(drafts.current)(parent.pk)
    assert kept is not None and len(kept.pages) == 1
    snapshot = await live.hub().snapshot(draft.draft_id)
    assert snapshot is not None
    assert book.lstrip().startswith('<div id="book" hx-swap-oob="true">')
    assert f"""hx-vals='{{"drawn_at": {snapshot.seq}}}'""" in book  # drawn at the socket's last frame
    assert 'id="page-1"' in book
    assert html.escape(kept.pages[0].text.split()[0]) in book
    assert html.escape(kept.current_question) in book
    assert f'hx-post="{reverse("books:make_page", args=[draft.draft_id, 2])}"' in book
    await socket.close()


async def test_after_a_failed_page_the_socket_sends_the_book_with_the_words_back_in_the_box(
    parent: Any, cookie: bytes, openai_storyteller: FakeOpenAI
) -> None:
    openai_storyteller.script("chat", status=500)
    draft = await a_book(parent)
    socket = await open_socket(draft.draft_id, cookie)
    await start_page(parent, draft, "a kite on the moon")
    await socket.read_until('class="run-state is-needs_attention"')
    book = await socket.next_frame()
    assert book.lstrip().startswith('<div id="book" hx-swap-oob="true">')
    assert "a kite on the moon</textarea>" in book
    assert f'hx-post="{reverse("books:make_page", args=[draft.draft_id, 1])}"' in book
    await runs.settle(draft.draft_id)
    await socket.close()


# -- frames that arrive late or never (as they can over Redis pub/sub) ---------------------------


class UnevenHub(LocalHub):
    """Stores every snapshot at once, as every hub must, but hands frames to watchers late
    (``hold``) or never (``drop``): the orders a Redis subscription can produce."""

    def __init__(self) -> None:
        super().__init__()
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.holding = asyncio.Event()
        self.dropping = False

    def hold(self) -> None:
        self.flowing.clear()

    def release(self) -> None:
        self.flowing.set()

    async def publish(self, snapshot: LiveSnapshot, deltas: list[Delta]) -> None:
        self.snapshots[snapshot.draft_id] = snapshot.to_json()
        if self.dropping:
            return
        if not self.flowing.is_set():
            self.holding.set()
            await self.flowing.wait()
        await self.fan_out.deliver(snapshot.draft_id, deltas)


class HandWrittenRun:
    """A run's frames, written one by one by the test."""

    def __init__(self, hub: LocalHub, draft_id: str) -> None:
        self.hub = hub
        self.snapshot = LiveSnapshot.start(
            draft_id=draft_id, page_number=1, run_id="by-hand", child_input="a kite", is_last_page=False
        )

    async def frame(self, *changes: tuple[str, str, dict[str, str]]) -> None:
        deltas = []
        for section, kind, values in changes:
            delta = Delta(seq=self.snapshot.seq + 1, section=section, kind=kind, **values)
            self.snapshot.apply(delta)
            deltas.append(delta)
        await self.hub.publish(self.snapshot, deltas)

    async def begin(self, text: str) -> None:
        await self.frame(
            ("", "run", {"status": "running"}),
            ("story", "status", {"status": "streaming"}),
            ("story", "text", {"text": text}),
        )

    async def write(self, text: str) -> None:
        await self.frame(("story", "text", {"text": text}))

    async def end(self, text: str) -> None:
        await self.frame(("story", "text", {"text": text}), ("story", "status", {"status": "complete"}))
        await self.frame(("", "run", {"status": "complete"}))


async def watched_run_by_hand(
    hub: LocalHub, draft: BookDraft, cookie: bytes, first_words: str = "Once "
) -> tuple[HandWrittenRun, SocketView, str]:
    """A run the test writes, its story begun, and a socket that has shown its snapshot (returned)."""
    run = HandWrittenRun(hub, draft.draft_id)
    await run.begin(first_words)
    socket = await open_socket(draft.draft_id, cookie)
    return run, socket, await socket.next_frame()


@pytest.fixture
async def uneven_hub(monkeypatch: pytest.MonkeyPatch) -> UnevenHub:
    found = UnevenHub()
    monkeypatch.setitem(live._hubs, asyncio.get_running_loop(), found)
    return found


async def test_a_frame_already_in_the_snapshot_is_not_shown_twice(
    parent: Any, cookie: bytes, uneven_hub: UnevenHub
) -> None:
    draft = await a_book(parent)
    run = HandWrittenRun(uneven_hub, draft.draft_id)
    await run.begin("Once ")
    uneven_hub.hold()
    late = asyncio.create_task(run.write("upon "))
    await asyncio.wait_for(uneven_hub.holding.wait(), timeout=PATIENCE_SECONDS)

    socket = await open_socket(draft.draft_id, cookie)
    await socket.next_frame()
    assert socket.story == "Once upon "  # the snapshot already has the frame still on its way
    uneven_hub.release()
    await late
    await run.end("a time.")
    await socket.read_until('class="run-state is-complete"')
    assert socket.story == "Once upon a time."
    await socket.close()


async def test_a_frame_this_process_never_got_is_made_up_from_the_snapshot(
    parent: Any, cookie: bytes, uneven_hub: UnevenHub
) -> None:
    run, socket, _ = await watched_run_by_hand(uneven_hub, await a_book(parent), cookie)
    assert socket.story == "Once "

    uneven_hub.dropping = True
    await run.write("upon ")
    uneven_hub.dropping = False
    await run.end("a time.")
    await socket.read_until('class="run-state is-complete"')
    assert socket.story == "Once upon a time."
    await socket.close()


PICTURE_BODY = re.compile(r'<div id="section-picture-body"[^>]*>(.*?)</div></div>', re.S)


async def test_the_pictures_tab_says_it_is_being_drawn_as_soon_as_its_badge_does(
    parent: Any, cookie: bytes, uneven_hub: UnevenHub
) -> None:
    """Its placeholder, not only its badge: "Streaming" beside "will appear here" reads as stuck."""
    run, socket, snapshot = await watched_run_by_hand(uneven_hub, await a_book(parent), cookie)
    assert "The picture will appear here." in PICTURE_BODY.findall(snapshot)[0]

    await run.frame(("picture", "status", {"status": "streaming"}))
    frame = await socket.next_frame()
    assert BADGE.findall(frame)[0] == ("picture", "streaming")
    assert 'id="section-picture-body" class="section-picture" hx-swap-oob="true"' in frame
    assert PICTURE_BODY.findall(frame) == ['<div class="picture-waiting">Drawing…']
    await socket.close()


def problem_line(html: str, section: str) -> str:
    """What the section's tab says under its text (its reason, retry or hint), in ``html``."""
    found = re.findall(
        rf'<div id="section-{section}-problem" class="section-problem"[^>]*>(.*?)</div>', html, re.S
    )
    assert len(found) == 1, f"no single problem line for {section}"
    return str(found[0]).strip()


async def test_a_part_that_waits_for_the_story_says_so_until_it_starts(
    parent: Any, cookie: bytes, uneven_hub: UnevenHub
) -> None:
    """An empty tab while the story streams reads as broken; it says what it waits for."""
    run, socket, snapshot = await watched_run_by_hand(uneven_hub, await a_book(parent), cookie)
    waiting = '<p class="hint">This part starts once the story is written.</p>'
    assert problem_line(snapshot, "question") == waiting
    assert problem_line(snapshot, "new_words") == waiting
    assert problem_line(snapshot, "picture") == ""  # it needs nothing: it starts at once
    assert problem_line(snapshot, "story") == ""

    await run.frame(
        ("story", "status", {"status": "complete"}), ("question", "status", {"status": "streaming"})
    )
    frame = await socket.next_frame()
    assert problem_line(frame, "question") == ""  # under way: nothing to wait for
    await socket.close()


async def test_the_tabs_drawn_by_the_socket_keep_the_story_s_language(
    parent: Any, parent_client: Client, cookie: bytes, uneven_hub: UnevenHub
) -> None:
    """A Korean book on an English page: its text says it is Korean, as on a full page load,
    so a screen reader reads it in a Korean voice."""
    draft = await sync_to_async(start_book_with_child)(
        parent, characters=[("미나", "빨간 우산을 든 아이")], page_count=3, language="ko"
    )
    run, socket, snapshot = await watched_run_by_hand(uneven_hub, draft, cookie, "옛날 옛적에 ")
    for name in ("story", "question", "new_words"):
        assert f'id="section-{name}-text" lang="ko"' in snapshot
    # The page load reads the snapshot from the configured store (Redis on services), which
    # this test's in-process hub does not write.
    await sync_to_async(live._snapshot_store_set)(run.snapshot)
    page = await sync_to_async(parent_client.get)(reverse("books:draft", args=[draft.draft_id]))
    assert page.status_code == 200
    assert 'id="section-story-text" lang="ko"' in page.content.decode()  # as the page load draws them
    await socket.close()


async def test_a_frame_for_a_tab_that_has_just_closed_is_not_logged_as_an_error(
    parent: Any, cookie: bytes, uneven_hub: UnevenHub, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    run, socket, _ = await watched_run_by_hand(uneven_hub, await a_book(parent), cookie)
    real_send = PageConsumer.send

    async def send_on_a_closed_socket(self: PageConsumer, *args: Any, **kwargs: Any) -> None:
        raise Disconnected("the tab closed before its disconnect event was handled")

    monkeypatch.setattr(PageConsumer, "send", send_on_a_closed_socket)
    with caplog.at_level(logging.DEBUG, logger="streaming.consumers"):
        await run.write("upon ")

    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert any("closed socket" in r.getMessage() for r in caplog.records)
    monkeypatch.setattr(PageConsumer, "send", real_send)
    await socket.close()


# -- a part that fails, and making it again -----------------------------------------------------


async def test_a_failed_picture_shows_on_its_own_tab_and_only_it_is_made_again(
    parent: Any, cookie: bytes, openai_storyteller: FakeOpenAI
) -> None:
    fake = openai_storyteller
    fake.script("chat", chunk_delay=0.01)  # the story, word by word
    fake.script("images", status=500)
    draft = await a_book(parent)
    await start_page(parent, draft, "a kite on the moon")
    socket = await open_socket(draft.draft_id, cookie)
    await socket.read_until('class="run-state is-needs_attention"')
    await runs.settle(draft.draft_id)

    assert socket.last_badges() == {
        "story": "complete",
        "picture": "unhealthy",
        "question": "complete",
        "new_words": "complete",
    }
    assert "Make the missing parts again" in socket.frames[-1]
    assert '<input type="hidden" name="section" value="picture">' in socket.frames[-1]
    story_before = socket.story.strip()
    chat_calls, picture_calls = len(fake.requests_to("chat")), len(fake.requests_to("images"))

    client = AsyncClient()
    await client.aforce_login(parent)
    response = await client.post(reverse("books:retry", args=[draft.draft_id]), {"section": "picture"})
    assert response.status_code == 302
    assert response["Location"] == reverse("books:draft", args=[draft.draft_id]) + "#live"
    await socket.read_until('class="run-state is-complete"')
    await runs.settle(draft.draft_id)

    assert socket.last_badges()["picture"] == "complete"
    assert socket.story.strip() == story_before  # the story tab was left as it was
    assert len(fake.requests_to("chat")) == chat_calls  # no word was asked for again
    assert len(fake.requests_to("images")) == picture_calls + 1
    kept = await sync_to_async(drafts.current)(parent.pk)
    assert kept is not None and len(kept.pages) == 1
    assert kept.pages[0].text == story_before
    assert kept.pages[0].picture
    await socket.close()
