"""Limits on making pages: a rate per minute and a quota per day, on the real database and cache.

The clock is pinned (``usage.limits._now``) so a minute or a day cannot end half-way through
a test; everything else is real: the cache that counts (Redis or the database cache), the
runs, the views.
"""

from __future__ import annotations

import asyncio
import html
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import caches
from django.db import OperationalError, connection
from django.test import AsyncClient
from django.urls import reverse

from books import drafts, services
from books.domain import BookDraft, BookState, IllegalMove
from books.drafts import GenerationLock
from books.ports import AdapterError, StoryContext, StoryWriter
from books.services import PageFailed
from streaming import live, runs
from tests.conftest import USING_REDIS
from tests.live_fixtures import no_run_left_behind  # noqa: F401 - autouse for this module
from tests.people import start_book_with_child
from usage import limits
from usage.limits import GenerationLimited, QuotaReached, RateLimited

pytestmark = pytest.mark.django_db(transaction=True)

# Half a minute past 19:00 UTC: the minute ends in 30 s, the day (UTC) in 4 h 59 min 30 s.
PINNED = datetime(2026, 11, 22, 19, 0, 30, tzinfo=UTC)
SECONDS_TO_NEXT_MINUTE = 30
SECONDS_TO_MIDNIGHT = 4 * 3600 + 59 * 60 + 30
CHARACTERS = [("Mina", "a girl with a red umbrella")]
PATIENCE_SECONDS = 15


class BrokenStoryWriter(StoryWriter):
    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        raise AdapterError("The storyteller is busy right now; try again in a moment.")
        yield ""  # pragma: no cover - makes this an async generator


class EndlessStoryWriter(StoryWriter):
    started: asyncio.Event

    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        yield "Once upon a time "
        self.started.set()
        await asyncio.sleep(3600)
        yield "never."  # pragma: no cover


@pytest.fixture(autouse=True)
def pinned_clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(limits, "_now", lambda: PINNED)
    return PINNED


@pytest.fixture
def set_limits(settings: Any) -> Callable[..., None]:
    def set_them(*, rate: int = 0, quota: int = 0) -> None:
        settings.LITTLEWRITER = {
            **settings.LITTLEWRITER,
            "GENERATION_RATE_PER_MINUTE": rate,
            "DAILY_PAGE_QUOTA": quota,
        }

    return set_them


def use_story_writer(settings: Any, path: str) -> None:
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": path}


async def a_book(user: Any, pages: int = 4) -> BookDraft:
    return await sync_to_async(start_book_with_child)(
        user, characters=CHARACTERS, page_count=pages, language="en"
    )


async def make(user: Any, draft: BookDraft, number: int, child_input: str = "a kite flies away") -> BookDraft:
    return await services.make_next_page(
        user_id=user.pk, draft_id=draft.draft_id, page_number=number, child_input=child_input
    )


async def stored(user: Any) -> BookDraft:
    draft = await sync_to_async(drafts.current)(user.pk)
    assert draft is not None
    return draft


async def counted_today(user: Any) -> int:
    return await sync_to_async(limits.pages_counted_today)(user.pk)


# -- the rate -----------------------------------------------------------------------------------


async def test_a_request_past_the_rate_is_refused_and_makes_nothing(
    parent: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(rate=2)
    draft = await a_book(parent)
    await make(parent, draft, 1)
    await make(parent, draft, 2)
    before = await stored(parent)
    snapshot_before = await live.hub().snapshot(draft.draft_id)

    with pytest.raises(RateLimited) as refused:
        await make(parent, draft, 3, "a third idea too soon")

    assert refused.value.status == 429
    assert refused.value.retry_after == SECONDS_TO_NEXT_MINUTE
    assert "Please wait 1 minute and try again" in str(refused.value)
    after = await stored(parent)
    assert after == before  # no page, no pending words, no error written into the book
    assert after.state is BookState.IN_PROGRESS and after.pending_input == ""
    assert not await sync_to_async(GenerationLock.is_held)(parent.pk)
    snapshot_after = await live.hub().snapshot(draft.draft_id)
    assert snapshot_after is not None and snapshot_before is not None
    assert snapshot_after.run_id == snapshot_before.run_id  # no run was started


async def test_the_rate_is_per_family(
    parent: Any, other_parent: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(rate=1)
    mine, theirs = await a_book(parent), await a_book(other_parent)
    await make(parent, mine, 1)
    await make(other_parent, theirs, 1)  # another family's minute is their own
    with pytest.raises(RateLimited):
        await make(parent, mine, 2)


async def test_an_illegal_move_costs_no_unit_of_the_rate(
    parent: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(rate=1)
    draft = await a_book(parent)
    with pytest.raises(IllegalMove, match="next page of this book is page 1"):
        await make(parent, draft, 3)
    await make(parent, draft, 1)  # the one unit of the minute is still there


# -- the daily quota ----------------------------------------------------------------------------


async def test_pages_past_the_daily_quota_are_refused_until_midnight(
    parent: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(quota=2)
    draft = await a_book(parent)
    await make(parent, draft, 1)
    await make(parent, draft, 2)
    assert await counted_today(parent) == 2

    with pytest.raises(QuotaReached) as refused:
        await make(parent, draft, 3)

    assert refused.value.status == 429
    assert refused.value.retry_after == SECONDS_TO_MIDNIGHT
    sentence = str(refused.value)
    assert "You have made 2 pages today" in sentence
    assert "from 00:00 (UTC), in about 5 hours" in sentence
    assert len((await stored(parent)).pages) == 2


async def test_a_page_the_parent_writes_counts_too(parent: Any, set_limits: Callable[..., None]) -> None:
    set_limits(quota=1)
    draft = await a_book(parent)
    await services.write_page_yourself(
        user_id=parent.pk, draft_id=draft.draft_id, page_number=1, text="Mina flew her kite."
    )
    with pytest.raises(QuotaReached):
        await make(parent, draft, 2)


async def test_a_failed_page_does_not_count(
    parent: Any, settings: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(quota=1)
    draft = await a_book(parent)
    use_story_writer(settings, f"{__name__}.BrokenStoryWriter")
    with pytest.raises(PageFailed):
        await make(parent, draft, 1)
    assert await counted_today(parent) == 0

    use_story_writer(settings, "books.adapters.offline.OfflineStoryWriter")
    await make(parent, draft, 1)  # the unit the failed page held is free again
    assert await counted_today(parent) == 1
    with pytest.raises(QuotaReached):
        await make(parent, draft, 2)


async def test_a_stopped_page_does_not_count(
    parent: Any, settings: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(quota=1)
    EndlessStoryWriter.started = asyncio.Event()
    use_story_writer(settings, f"{__name__}.EndlessStoryWriter")
    draft = await a_book(parent)
    run = await services.start_next_page(
        user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input="a kite flies away"
    )
    await asyncio.wait_for(EndlessStoryWriter.started.wait(), timeout=PATIENCE_SECONDS)
    assert await counted_today(parent) == 1  # held while the page is made

    await services.stop_page(user_id=parent.pk, draft_id=draft.draft_id)
    await asyncio.wait_for(asyncio.wait([run]), timeout=PATIENCE_SECONDS)

    assert run.cancelled()
    assert await counted_today(parent) == 0


async def test_making_failed_parts_again_counts_the_page_once(
    parent: Any, settings: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(quota=1)
    draft = await a_book(parent)
    use_story_writer(settings, f"{__name__}.BrokenStoryWriter")
    with pytest.raises(PageFailed):
        await make(parent, draft, 1)
    use_story_writer(settings, "books.adapters.offline.OfflineStoryWriter")

    run = await services.retry_sections(user_id=parent.pk, draft_id=draft.draft_id, sections={"story"})
    kept = await run

    assert len(kept.pages) == 1
    assert await counted_today(parent) == 1


def test_the_day_ends_at_midnight_in_the_configured_time_zone(parent: Any, settings: Any) -> None:
    settings.TIME_ZONE = "Asia/Seoul"
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "DAILY_PAGE_QUOTA": 1}
    limits.keep_page_unit(limits.hold_page_unit(parent.pk))
    with pytest.raises(QuotaReached) as refused:
        limits.hold_page_unit(parent.pk)
    # 19:00:30 UTC is 04:00:30 in Seoul: that day ends at 15:00 UTC the next day.
    assert refused.value.retry_after == 19 * 3600 + 59 * 60 + 30
    assert "from 00:00 (KST)" in str(refused.value)


def test_a_limit_of_zero_is_no_limit(parent: Any, set_limits: Callable[..., None]) -> None:
    set_limits(rate=0, quota=0)
    for _ in range(50):
        limits.take_rate_unit(parent.pk)
        assert limits.hold_page_unit(parent.pk) is None


# -- the atomic step ------------------------------------------------------------------------------


# SQLite's in-memory test database (pytest-django's default) shares one cache between its
# connections: a statement meeting another thread's write fails at once ("database table is
# locked") where the file database the app uses waits its turn, and the database cache turns
# such a failed write into "not added". So on the embedded configuration a contender can lose
# a race nobody won; what must hold everywhere is that no more units are taken than are free,
# and on Redis exactly that many are.
EXACT_WINNERS = USING_REDIS
LOCKED_RETRIES = 50


def _race(contenders: int, attempt: Callable[[], object]) -> tuple[int, int]:
    """Run ``attempt`` in ``contenders`` threads released at the same moment: (won, refused)."""
    start = threading.Barrier(contenders)

    def contend() -> bool:
        try:
            start.wait()
            for retry in range(LOCKED_RETRIES):
                try:
                    attempt()
                    return True
                except GenerationLimited:
                    return False
                except OperationalError:
                    # The test database's lock (see above): that read changed nothing. Back off
                    # a little, or on a busy machine all the retries fall inside one lock.
                    time.sleep(0.002 * (retry + 1))
            raise AssertionError("the test database stayed locked")
        finally:
            connection.close()  # each thread had its own database connection

    with ThreadPoolExecutor(max_workers=contenders) as pool:
        outcomes = list(pool.map(lambda _: contend(), range(contenders)))
    return outcomes.count(True), outcomes.count(False)


def test_concurrent_requests_cannot_both_take_the_last_page_of_the_day(
    parent: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(quota=3)
    limits.keep_page_unit(limits.hold_page_unit(parent.pk))
    limits.keep_page_unit(limits.hold_page_unit(parent.pk))
    won, refused = _race(6, lambda: limits.hold_page_unit(parent.pk))
    assert won <= 1 and won + refused == 6
    assert limits.pages_counted_today(parent.pk) == 2 + won
    if EXACT_WINNERS:
        assert won == 1


def test_concurrent_requests_cannot_go_past_the_rate(parent: Any, set_limits: Callable[..., None]) -> None:
    set_limits(rate=3)
    won, refused = _race(8, lambda: limits.take_rate_unit(parent.pk))
    assert won <= 3 and won + refused == 8
    if EXACT_WINNERS:
        assert won == 3


def test_the_cache_add_decides_even_when_every_request_read_the_unit_as_free(
    parent: Any, set_limits: Callable[..., None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The worst interleaving, played out in order: every request reads "free" before any writes.
    set_limits(quota=1)
    monkeypatch.setattr(type(caches["default"]), "get_many", lambda self, keys, version=None: {})
    outcomes = []
    for _ in range(6):
        try:
            outcomes.append(limits.hold_page_unit(parent.pk) is not None)
        except QuotaReached:
            outcomes.append(False)
    assert outcomes == [True, False, False, False, False, False]


# -- through the web pages ------------------------------------------------------------------------


@pytest.fixture
async def parent_aclient(parent: Any) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(parent)
    return client


def text_of(response: Any) -> str:
    return html.unescape(response.content.decode())


async def post_and_settle(client: AsyncClient, url: str, data: dict[str, str], draft_id: str) -> Any:
    response = await client.post(url, data)
    await runs.settle(draft_id)
    return response


async def test_making_a_page_past_the_rate_answers_429_and_keeps_the_childs_words(
    parent_aclient: AsyncClient, parent: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(rate=1)
    draft = await a_book(parent)
    make_url = reverse("books:make_page", args=[draft.draft_id, 1])
    first = await post_and_settle(parent_aclient, make_url, {"child_input": "a kite flies"}, draft.draft_id)
    assert first.status_code == 302

    response = await parent_aclient.post(
        reverse("books:make_page", args=[draft.draft_id, 2]), {"child_input": "the kite meets a cloud"}
    )

    assert response.status_code == 429
    assert response["Retry-After"] == str(SECONDS_TO_NEXT_MINUTE)
    page = text_of(response)
    assert "Please wait 1 minute and try again." in page
    assert "the kite meets a cloud</textarea>" in page  # the child's idea is still in the box
    assert 'id="limit-refusal"' in page
    book = await stored(parent)
    assert len(book.pages) == 1 and book.pending_input == ""


async def test_writing_a_page_past_the_quota_answers_429_and_keeps_the_parents_words(
    parent_aclient: AsyncClient, parent: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(quota=1)
    draft = await a_book(parent)
    first = await post_and_settle(
        parent_aclient,
        reverse("books:write_page", args=[draft.draft_id, 1]),
        {"write-text": "Mina flew her kite.", "write-question": ""},
        draft.draft_id,
    )
    assert first.status_code == 302

    response = await parent_aclient.post(
        reverse("books:write_page", args=[draft.draft_id, 2]),
        {"write-text": "The kite found a cloud to play with.", "write-question": "What next?"},
    )

    assert response.status_code == 429
    assert response["Retry-After"] == str(SECONDS_TO_MIDNIGHT)
    page = text_of(response)
    assert "You have made 1 page today" in page
    assert "You can make more from 00:00 (UTC), in about 5 hours." in page
    assert "The kite found a cloud to play with.</textarea>" in page
    assert '<details class="write-yourself" open>' in page
    assert len((await stored(parent)).pages) == 1


async def test_making_parts_again_past_the_rate_answers_429_not_500(
    parent_aclient: AsyncClient, parent: Any, settings: Any, set_limits: Callable[..., None]
) -> None:
    set_limits(rate=1)
    use_story_writer(settings, f"{__name__}.BrokenStoryWriter")
    draft = await a_book(parent)
    make_url = reverse("books:make_page", args=[draft.draft_id, 1])
    await post_and_settle(parent_aclient, make_url, {"child_input": "a kite flies"}, draft.draft_id)
    retry_url = reverse("books:retry", args=[draft.draft_id])

    plain = await parent_aclient.post(retry_url, {"section": "story"})
    assert plain.status_code == 429
    assert plain["Retry-After"] == str(SECONDS_TO_NEXT_MINUTE)
    assert "Please wait 1 minute and try again." in text_of(plain)
    assert "Time for a little break" in text_of(plain)

    # From the live tabs' button (htmx): the notice there gets the sentence.
    from_tabs = await parent_aclient.post(retry_url, {"section": "story"}, headers={"HX-Request": "true"})
    assert from_tabs.status_code == 429
    assert from_tabs["Retry-After"] == str(SECONDS_TO_NEXT_MINUTE)
    fragment = text_of(from_tabs)
    assert 'id="live-notice"' in fragment and 'hx-swap-oob="true"' in fragment
    assert "Please wait 1 minute and try again." in fragment
    assert "<html" not in fragment
