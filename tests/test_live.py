"""The live hub: snapshot plus newer frames, coalescing, fan-out (local and Redis)."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
from collections.abc import AsyncIterator
from typing import Any

import pytest
from django.conf import settings

from streaming.live import Delta, LiveHub, LivePublisher, LiveSnapshot, LocalHub, RedisHub, RunState
from streaming.sections import SectionStatus


@pytest.fixture(params=["local", "redis"])
async def live_hub(request: pytest.FixtureRequest) -> AsyncIterator[LiveHub]:
    if request.param == "local":
        yield LocalHub()
        return
    if not settings.REDIS_URL:
        pytest.skip("the Redis hub runs on the Redis configuration (REDIS_URL is not set)")
    found = RedisHub(settings.REDIS_URL, "lw-test")
    yield found
    await found.close()


def a_snapshot(draft_id: str = "d1") -> LiveSnapshot:
    return LiveSnapshot.start(
        draft_id=draft_id, page_number=1, run_id="r1", child_input="a kite", is_last_page=False
    )


class Watcher:
    def __init__(self) -> None:
        self.frames: list[list[Delta]] = []
        self.waiting_for = 0
        self.arrived = asyncio.Event()

    async def __call__(self, deltas: list[Delta]) -> None:
        self.frames.append(deltas)
        if self.seqs[-1] >= self.waiting_for:
            self.arrived.set()

    @property
    def seqs(self) -> list[int]:
        return [d.seq for frame in self.frames for d in frame]


async def settle(watcher: Watcher, last_seq: int) -> None:
    """Wait until the watcher has received the frame carrying ``last_seq``."""
    watcher.waiting_for = last_seq
    if watcher.seqs and watcher.seqs[-1] >= last_seq:
        return
    watcher.arrived.clear()
    await asyncio.wait_for(watcher.arrived.wait(), timeout=5)


def test_snapshot_folds_deltas_and_round_trips() -> None:
    snapshot = a_snapshot()
    snapshot.apply(Delta(1, "story", "status", status="streaming"))
    snapshot.apply(Delta(2, "story", "text", text="Once "))
    snapshot.apply(Delta(3, "story", "text", text="upon"))
    snapshot.apply(Delta(4, "picture", "status", status="unhealthy", reason="busy"))
    snapshot.apply(Delta(5, "", "run", status="needs_attention", reason="the picture failed"))
    again = LiveSnapshot.from_json(snapshot.to_json())
    assert again == snapshot
    assert again.seq == 5 and again.state is RunState.NEEDS_ATTENTION
    assert again.sections["story"].text == "Once upon"
    assert again.sections["picture"].status is SectionStatus.UNHEALTHY
    assert list(again.sections) == ["story", "picture", "question", "new_words"]
    # The stored document is the dataclasses' own shape: what every server process reads.
    assert json.loads(snapshot.to_json()) == dataclasses.asdict(snapshot)


def test_a_retried_section_starts_from_nothing() -> None:
    snapshot = a_snapshot()
    snapshot.apply(Delta(1, "question", "text", text="Half a"))
    snapshot.apply(Delta(2, "question", "status", status="unhealthy", reason="cut"))
    snapshot.apply(Delta(3, "question", "status", status="streaming"))
    assert snapshot.sections["question"].text == "" and snapshot.sections["question"].reason == ""


async def test_frames_reach_every_watcher_and_the_snapshot_holds_them(live_hub: LiveHub) -> None:
    first, second = Watcher(), Watcher()
    await live_hub.watch("d1", first)
    await live_hub.watch("d1", second)
    publisher = LivePublisher(live_hub, a_snapshot(), frame_seconds=0.01)
    publisher.emit("story", "status", status="streaming")
    for word in ["Once ", "upon ", "a ", "time."]:
        publisher.emit("story", "text", text=word)
        await asyncio.sleep(0.003)
    await publisher.close()
    await settle(first, 5)
    await settle(second, 5)
    assert first.seqs == second.seqs == [1, 2, 3, 4, 5]
    stored = await live_hub.snapshot("d1")
    assert stored is not None and stored.seq == 5 and stored.sections["story"].text == "Once upon a time."
    await live_hub.unwatch("d1", first)
    await live_hub.unwatch("d1", second)


async def test_pieces_are_coalesced_into_frames(live_hub: LiveHub) -> None:
    watcher = Watcher()
    await live_hub.watch("d2", watcher)
    publisher = LivePublisher(live_hub, a_snapshot("d2"), frame_seconds=0.05)
    for index in range(40):
        publisher.emit("story", "text", text=f"{index} ")
    await publisher.close()
    await settle(watcher, 40)
    assert watcher.seqs == list(range(1, 41))
    assert len(watcher.frames) <= 2  # the first piece at once, the rest together
    await live_hub.unwatch("d2", watcher)


async def test_a_late_watcher_gets_snapshot_then_only_newer_frames(live_hub: LiveHub) -> None:
    publisher = LivePublisher(live_hub, a_snapshot("d3"), frame_seconds=0.005)
    for index in range(10):
        publisher.emit("story", "text", text=f"{index} ")
        await asyncio.sleep(0.002)
    late = Watcher()
    await live_hub.watch("d3", late)
    snapshot = await live_hub.snapshot("d3")
    for index in range(10, 20):
        publisher.emit("story", "text", text=f"{index} ")
        await asyncio.sleep(0.002)
    await publisher.close()
    await settle(late, 20)
    assert snapshot is not None
    newer = [seq for seq in late.seqs if seq > snapshot.seq]
    assert newer == list(range(snapshot.seq + 1, 21))  # nothing missed, nothing twice
    await live_hub.unwatch("d3", late)


async def test_unwatched_handlers_get_nothing(live_hub: LiveHub) -> None:
    watcher, other = Watcher(), Watcher()
    await live_hub.watch("d4", watcher)
    await live_hub.watch("d4", other)
    await live_hub.unwatch("d4", watcher)
    publisher = LivePublisher(live_hub, a_snapshot("d4"))
    publisher.emit("story", "text", text="hello")
    await publisher.close()
    await settle(other, 1)
    assert watcher.frames == []


async def test_a_failing_watcher_does_not_stop_the_others(live_hub: LiveHub) -> None:
    async def broken(deltas: list[Delta]) -> None:
        raise RuntimeError("socket gone")

    healthy = Watcher()
    await live_hub.watch("d5", broken)
    await live_hub.watch("d5", healthy)
    publisher = LivePublisher(live_hub, a_snapshot("d5"))
    publisher.emit("story", "text", text="hello")
    await publisher.close()
    await settle(healthy, 1)
    assert healthy.seqs == [1]


async def test_many_books_publishing_at_once_each_arrive_whole_and_in_order(live_hub: LiveHub) -> None:
    books = [f"many-{index}" for index in range(30)]
    watchers = {draft_id: Watcher() for draft_id in books}
    for draft_id, watcher in watchers.items():
        await live_hub.watch(draft_id, watcher)

    async def one_book(draft_id: str) -> None:
        publisher = LivePublisher(live_hub, a_snapshot(draft_id), frame_seconds=0.002)
        for index in range(25):
            publisher.emit("story", "text", text=f"{index} ")
            await asyncio.sleep(0)
        await publisher.close()

    await asyncio.gather(*(one_book(draft_id) for draft_id in books))
    for draft_id, watcher in watchers.items():
        await settle(watcher, 25)
        assert watcher.seqs == list(range(1, 26))
        stored = await live_hub.snapshot(draft_id)
        assert stored is not None and stored.sections["story"].text == "".join(f"{i} " for i in range(25))
        await live_hub.unwatch(draft_id, watcher)


async def test_a_slow_watcher_of_one_book_does_not_hold_up_another_book(live_hub: LiveHub) -> None:
    let_go = asyncio.Event()

    async def stuck(deltas: list[Delta]) -> None:
        await let_go.wait()

    quick = Watcher()
    await live_hub.watch("slow-book", stuck)
    await live_hub.watch("quick-book", quick)
    slow = LivePublisher(live_hub, a_snapshot("slow-book"))
    slow.emit("story", "text", text="waiting")
    slow_closed = asyncio.create_task(slow.close())
    other = LivePublisher(live_hub, a_snapshot("quick-book"))
    other.emit("story", "text", text="hello")
    await other.close()
    await settle(quick, 1)
    assert quick.seqs == [1]
    if isinstance(live_hub, RedisHub):
        # Through Redis a run never waits for a watcher; in process only the slow book's run does.
        await asyncio.wait_for(slow_closed, timeout=5)
    let_go.set()
    await slow_closed
    await live_hub.unwatch("slow-book", stuck)
    await live_hub.unwatch("quick-book", quick)


def test_hub_matches_the_configuration(settings: Any) -> None:
    from streaming.live import hub

    async def which() -> str:
        found = hub()
        name = type(found).__name__
        if isinstance(found, RedisHub):
            await found.close()
        return name

    assert asyncio.run(which()) == ("RedisHub" if settings.REDIS_URL else "LocalHub")


def test_the_tabs_stylesheet_opens_the_panel_of_each_tab_the_page_has() -> None:
    """Each set of tabs gets its own rules (the stylesheet is kept per set): a last page has no question."""
    from streaming.consumers import _render

    middle = _render("live", {"live": a_snapshot()})
    last = _render(
        "live",
        {
            "live": LiveSnapshot.start(
                draft_id="d2", page_number=3, run_id="r2", child_input="", is_last_page=True
            )
        },
    )
    for html, tabs in (
        (middle, ["story", "picture", "question", "new_words"]),
        (last, ["story", "picture", "new_words"]),
    ):
        style = html[html.index("<style>") : html.index("</style>")]
        opened = re.findall(r"#tab-(\w+):checked ~ \.tab-panels #panel-(\w+) \{ display: block; \}", style)
        assert opened == [(tab, tab) for tab in tabs]
        assert [f'id="panel-{tab}"' in html for tab in tabs] == [True] * len(tabs)
    assert "#tab-question" not in last


def _open_tab_in(html: str) -> list[str]:
    return re.findall(r'<input type="radio" class="tab-radio" [^>]*id="tab-(\w+)" checked>', html)


def test_the_tab_that_opens_is_the_part_being_made() -> None:
    """Drawn afresh (a new run, a reload, a reconnect), the tabs open where something happens: a
    retried picture's tab, not the story written before it."""
    from streaming.consumers import _render

    fresh = a_snapshot()
    fresh.sections["story"].status = SectionStatus.STREAMING
    assert _open_tab_in(_render("live", {"live": fresh})) == ["story"]

    failed = a_snapshot()
    for name in ("story", "question", "new_words"):
        failed.sections[name].status = SectionStatus.COMPLETE
    failed.sections["picture"].status = SectionStatus.UNHEALTHY
    failed.state = RunState.NEEDS_ATTENTION
    assert _open_tab_in(_render("live", {"live": failed})) == ["picture"]  # it needs a retry

    retry = LiveSnapshot.start(
        draft_id="d1",
        page_number=1,
        run_id="r2",
        child_input="",
        is_last_page=False,
        previous=failed,
        rerun={"picture"},
    )
    retry.sections["picture"].status = SectionStatus.STREAMING
    assert _open_tab_in(_render("live", {"live": retry})) == ["picture"]  # being drawn again

    done = a_snapshot()
    for state in done.sections.values():
        state.status = SectionStatus.COMPLETE
    done.state = RunState.COMPLETE
    assert _open_tab_in(_render("live", {"live": done})) == ["story"]
