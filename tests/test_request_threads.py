"""Requests borrow a thread from a bounded pool, page runs one per call; one at a time per thread."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

import pytest
from asgiref.sync import ThreadSensitiveContext, async_to_sync, sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.urls import reverse

from books import drafts, pictures, services
from books.adapters.offline_moderator import OfflineModerator
from books.domain import Language
from books.ports import Verdict
from littlewriter import asgi
from littlewriter.request_threads import (
    RUN_THREADS,
    WORKER_THREADS,
    BorrowedThreadCalls,
    PooledThreadsASGIHandler,
    WaitTimes,
    WorkerThreads,
    _kept_for,
)
from streaming import runs
from tests.people import make_parent, start_book_with_child
from tests.test_two_processes import signed_in

HTTP_SCOPE = {"type": "http"}


class RecordingHandler(PooledThreadsASGIHandler):
    """``handle`` replaced by sync work that notes its thread, to watch how threads are lent."""

    def __init__(self, threads: WorkerThreads, *, meet: threading.Barrier | None = None) -> None:
        super().__init__(threads)
        self.meet = meet
        self.seen: list[int] = []

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        await sync_to_async(self._work)()
        await sync_to_async(self._work)()  # a request's sync calls stay in its one thread

    def _work(self) -> None:
        self.seen.append(threading.get_ident())
        if self.meet is not None:
            self.meet.wait(timeout=5)  # both requests in their threads at the same moment


class FailingHandler(PooledThreadsASGIHandler):
    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        await sync_to_async(lambda: None)()
        raise RuntimeError("the view broke")


def test_what_the_app_loaded_at_start_is_left_out_of_full_collections() -> None:
    """Loading the ASGI app (this module imports it) freezes Django, the app and the SDK."""
    assert asgi.application is not None
    assert gc.get_freeze_count() > 50_000


async def test_requests_one_after_another_use_one_thread() -> None:
    threads = WorkerThreads(limit=4)
    handler = RecordingHandler(threads)
    for _ in range(3):
        await handler(HTTP_SCOPE, None, None)
    assert threads.started == 1
    assert len(set(handler.seen)) == 1
    assert handler.seen[0] != threading.get_ident()
    assert len(threads.idle) == 1


async def test_requests_at_the_same_time_never_share_a_thread() -> None:
    threads = WorkerThreads(limit=4)
    handler = RecordingHandler(threads, meet=threading.Barrier(2))
    await asyncio.gather(handler(HTTP_SCOPE, None, None), handler(HTTP_SCOPE, None, None))
    assert threads.started == 2
    assert len(set(handler.seen)) == 2  # each request's two calls in its own thread
    assert len(threads.idle) == 2
    handler.meet = None
    await handler(HTTP_SCOPE, None, None)
    assert threads.started == 2  # the next request borrows one of them


class CountingHandler(PooledThreadsASGIHandler):
    """Notes how many requests are in their threads at once."""

    def __init__(self, threads: WorkerThreads) -> None:
        super().__init__(threads)
        self.inside = 0
        self.most_inside = 0
        self.guard = threading.Lock()
        self.finished = 0

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        await sync_to_async(self._work)()

    def _work(self) -> None:
        with self.guard:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        time.sleep(0.02)
        with self.guard:
            self.inside -= 1
            self.finished += 1


async def test_no_more_requests_than_the_limit_are_in_threads_at_once() -> None:
    threads = WorkerThreads(limit=2)
    handler = CountingHandler(threads)
    await asyncio.gather(*(handler(HTTP_SCOPE, None, None) for _ in range(6)))
    assert handler.finished == 6  # the others waited their turn, none was refused
    assert handler.most_inside <= 2
    assert threads.turns.most_busy == 2
    assert threads.started == 2  # two threads served all six
    assert threads.turns.busy == 0 and not threads.turns.waiting


async def test_borrowers_beyond_the_limit_take_turns_in_the_order_they_came() -> None:
    threads = WorkerThreads(limit=1)
    order: list[int] = []

    async def borrow(number: int) -> None:
        async with threads.lent():
            order.append(number)
            await asyncio.sleep(0)

    async with threads.lent():
        waiters = [asyncio.create_task(borrow(n)) for n in range(4)]
        await asyncio.sleep(0.01)
        assert order == []  # all waiting while the one thread is lent
        assert len(threads.turns.waiting) == 4
    await asyncio.gather(*waiters)
    assert order == [0, 1, 2, 3]


async def test_a_borrower_that_stops_waiting_loses_no_place() -> None:
    threads = WorkerThreads(limit=1)
    async with threads.lent():
        gave_up = asyncio.create_task(_borrow_briefly(threads))
        await asyncio.sleep(0.01)
        gave_up.cancel()
        with pytest.raises(asyncio.CancelledError):
            await gave_up
        assert not threads.turns.waiting
    assert threads.turns.busy == 0
    await asyncio.wait_for(_borrow_briefly(threads), timeout=5)  # the place is free again
    assert threads.turns.busy == 0


async def _borrow_briefly(threads: WorkerThreads) -> None:
    async with threads.lent():
        await sync_to_async(lambda: None)()


async def test_a_failed_request_does_not_give_its_thread_to_another() -> None:
    threads = WorkerThreads(limit=4)
    with pytest.raises(RuntimeError, match="the view broke"):
        await FailingHandler(threads)(HTTP_SCOPE, None, None)
    assert threads.idle == []
    handler = RecordingHandler(threads)
    await handler(HTTP_SCOPE, None, None)
    assert threads.started == 2


async def test_only_http_is_handled() -> None:
    with pytest.raises(ValueError, match="websocket"):
        await PooledThreadsASGIHandler(WorkerThreads(limit=4))({"type": "websocket"}, None, None)


@pytest.mark.django_db(transaction=True)
async def test_the_app_serves_pages_from_a_reused_thread_and_connection() -> None:
    """Through the real ASGI application: a second page comes from the same thread and connection."""
    handler = asgi.django_asgi_app
    assert isinstance(handler, PooledThreadsASGIHandler)
    threads = handler.threads
    cookie = await sync_to_async(_signed_in_cookie)()
    connections_seen = []
    for _ in range(2):
        # "My books" reads the session and the user from the database.
        response = await _get("/mine/", cookie=cookie)  # ended: its thread is given back
        assert response["status"] == 200
        assert b"Log out" in response["body"]  # signed in: the session and user were read
        # The thread the request just gave back, asked which connection it holds.
        thread = threads.idle[-1]
        connections_seen.append(await asyncio.wrap_future(thread.submit(_connection_in_this_thread)))
    assert connections_seen[0] is not None
    assert connections_seen[0] is connections_seen[1]  # held here, so not a new one at the same id


async def _get(
    path: str, *, cookie: bytes = b"", host: bytes = b"localhost", method: str = "GET", **more: Any
) -> dict[str, Any]:
    """One request through the whole ASGI application, once it has ended (its thread given back).

    Its own reader rather than ``HttpCommunicator.get_response``, which expects a body in every
    message: a streamed response ends with one that has none.
    """
    headers = [(b"host", host), *([(b"cookie", cookie)] if cookie else []), *more.pop("headers", [])]
    communicator = HttpCommunicator(asgi.application, method, path, headers=headers, **more)
    await communicator.send_input({"type": "http.request", "body": communicator.body})
    start = await communicator.receive_output(timeout=10)
    assert start["type"] == "http.response.start"
    body = b""
    while True:
        part = await communicator.receive_output(timeout=10)
        assert part["type"] == "http.response.body"
        body += part.get("body", b"")
        if not part.get("more_body", False):
            break
    await communicator.wait()
    return {"status": start["status"], "headers": start.get("headers", []), "body": body}


@pytest.mark.django_db(transaction=True)
async def test_the_app_answers_bad_requests_as_django_does() -> None:
    missing = await _get("/no-such-page/")
    assert missing["status"] == 404
    assert b"<html" in missing["body"]
    assert (await _get("/accounts/login/", host=b"evil.example"))["status"] == 400  # not an allowed host
    no_token = await _get("/accounts/login/", method="POST", body=b"username=a&password=b")
    assert no_token["status"] == 403  # the CSRF check


@pytest.mark.django_db(transaction=True)
async def test_an_async_view_answers_through_the_thread_chain() -> None:
    """The middleware runs in the request's thread; an async view still runs on the loop and answers."""
    cookie, _user_id, draft_id = await sync_to_async(_signed_in_with_a_book)()
    page = await _get(f"/drafts/{draft_id}/", cookie=cookie)
    assert page["status"] == 200
    csrf = _cookie_value(page, b"csrftoken")
    stop = await _get(
        f"/drafts/{draft_id}/stop",
        method="POST",
        cookie=cookie + b"; csrftoken=" + csrf,
        headers=[(b"x-csrftoken", csrf), (b"origin", b"http://localhost")],
    )
    assert stop["status"] == 409
    assert b"No page is being made right now." in stop["body"]


def _session_cookie(user: Any) -> bytes:
    return f"sessionid={signed_in(user)['sessionid']}".encode()


def _signed_in_with_a_book() -> tuple[bytes, int, str]:
    """A parent's session cookie, their id and the id of their new draft."""
    parent: Any = make_parent("async-view-parent")
    draft = start_book_with_child(parent, characters=[("Mina", "a cat")], page_count=2, language="en")
    return _session_cookie(parent), parent.pk, draft.draft_id


def _cookie_value(response: Any, name: bytes) -> bytes:
    for header, value in response["headers"]:
        if header.lower() == b"set-cookie" and value.startswith(name + b"="):
            return value.split(b";", 1)[0].split(b"=", 1)[1]
    raise AssertionError(f"no {name!r} cookie was set")


def _connection_in_this_thread() -> Any:
    return connection.connection


def _ident_of(executor: Any) -> int:
    return executor.submit(threading.get_ident).result(timeout=5)


def _signed_in_cookie() -> bytes:
    return _session_cookie(make_parent("pooled-thread-parent"))


@pytest.mark.django_db(transaction=True)
async def test_page_runs_hold_no_thread_once_they_have_ended() -> None:
    parent: Any = await sync_to_async(make_parent)("run-thread-parent")
    draft = await sync_to_async(start_book_with_child)(
        parent, characters=[("Mina", "a cat")], page_count=3, language="en"
    )
    for number in (1, 2):
        await services.make_next_page(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=number, child_input="a kite flies away"
        )
        # The run's last call answered from its thread; the thread is back on the loop's next turns.
        await _until(lambda: RUN_THREADS.turns.busy == 0)
        assert RUN_THREADS.idle  # back for the next run's calls
    assert RUN_THREADS.started <= RUN_THREADS.limit
    kept = await sync_to_async(drafts.current)(parent.pk)
    assert kept is not None and len(kept.pages) == 2


async def _until(condition: Callable[[], bool], seconds: float = 5) -> None:
    """Wait until ``condition()`` holds (the pool signals nothing to wait on), failing after ``seconds``."""
    async with asyncio.timeout(seconds):
        while not condition():  # noqa: ASYNC110 - polled: the pool has no event to wait on
            await asyncio.sleep(0.001)


async def test_a_runs_calls_go_one_at_a_time_and_hold_no_thread_in_between() -> None:
    threads = WorkerThreads(limit=4)
    seen: list[tuple[str, int]] = []
    inside = threading.Lock()

    def call(name: str) -> None:
        assert inside.acquire(blocking=False), "two calls of one run at the same time"
        try:
            seen.append((name, threading.get_ident()))
            time.sleep(0.02)
        finally:
            inside.release()

    async def work() -> None:
        # Two sections of one run calling at the same moment: one after the other.
        await asyncio.gather(sync_to_async(call)("picture"), sync_to_async(call)("flag"))
        # Waiting for an upstream now: the run holds no thread (it would hold one for good).
        await _until(lambda: threads.turns.busy == 0)
        await sync_to_async(call)("page")

    async with ThreadSensitiveContext(executor=BorrowedThreadCalls(threads)):
        await work()
    assert [name for name, _ in seen] == ["picture", "flag", "page"]
    assert threading.get_ident() not in {ident for _, ident in seen}
    assert threads.started == 1  # one after the other: the same idle thread each time
    await _until(lambda: threads.turns.busy == 0)


async def test_a_run_that_stops_waiting_leaves_its_call_to_finish_before_the_thread_goes_back() -> None:
    threads = WorkerThreads(limit=1)
    release = threading.Event()
    finished: list[str] = []

    def slow() -> None:
        release.wait(timeout=5)
        finished.append("slow")

    async with ThreadSensitiveContext(executor=BorrowedThreadCalls(threads)):
        stopped = asyncio.create_task(sync_to_async(slow)())
        await asyncio.sleep(0.05)
        stopped.cancel()  # a stopped run: its call is already running in a thread
        with pytest.raises(asyncio.CancelledError):
            await stopped
        assert threads.turns.busy == 1  # still that call's
        release.set()
        await sync_to_async(lambda: finished.append("next"))()
    assert finished == ["slow", "next"]
    await _until(lambda: threads.turns.busy == 0)  # the thread goes back right after answering


@pytest.mark.django_db(transaction=True)
async def test_a_runs_call_replaces_a_connection_that_broke_while_idle() -> None:
    """A run pool thread's connection, dropped by the server while idle, is not handed to the next call."""
    if connection.vendor == "sqlite":
        pytest.skip("Django checks the health of MySQL/MariaDB connections; SQLite's is always usable")
    threads = WorkerThreads(limit=1)
    calls = BorrowedThreadCalls(threads)
    async with ThreadSensitiveContext(executor=calls):
        first = await sync_to_async(_open_a_connection)()
        killed = first.thread_id()
        # From another thread's connection, as a server restart or its wait_timeout would.
        await asyncio.to_thread(_kill_the_connection, killed)
        second = await sync_to_async(_open_a_connection)()
    assert threads.started == 1  # the same thread, a new connection
    assert first is not second
    assert second.thread_id() != killed


def _open_a_connection() -> Any:
    get_user_model().objects.exists()
    assert connection.connection is not None
    return connection.connection


def _kill_the_connection(server_thread_id: int) -> None:
    try:
        with connection.cursor() as cursor:
            cursor.execute("KILL %s", [server_thread_id])
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
async def test_a_picture_streams_through_the_app() -> None:
    """A file response is sent from the loop in chunks (or, on S3, the signed redirect is)."""
    cookie, user_id, draft_id = await sync_to_async(_signed_in_with_a_book)()
    await services.make_next_page(user_id=user_id, draft_id=draft_id, page_number=1, child_input="a kite")
    answer = await _get(f"/drafts/{draft_id}/pages/1/picture", cookie=cookie)
    if pictures.is_s3():
        assert answer["status"] == 302
        assert dict(answer["headers"])[b"Location"].startswith(b"http")
    else:
        assert answer["status"] == 200
        assert answer["body"].startswith(b"\x89PNG\r\n\x1a\n")


# -- a request waiting on the loop gives its place up (a slow moderator) -------------------------


class WaitingHandler(PooledThreadsASGIHandler):
    """A request whose sync code runs, then waits on the loop for ``gate`` (as an async view
    waits for a moderator's answer), then runs sync code again. Notes (step, thread, connection)."""

    def __init__(
        self, threads: WorkerThreads, gate: Callable[[], Awaitable[Any]], name: str = "", **aside: Any
    ) -> None:
        super().__init__(threads)
        self.gate, self.name, self.aside = gate, name, aside
        self.seen: list[tuple[str, int, Any]] = []

    async def handle(self, scope: Any, receive: Any, send: Any) -> None:
        await sync_to_async(self._note)("before")
        await self.threads.aside_while(self.gate(), **self.aside)
        await sync_to_async(self._note)("after")

    def _note(self, step: str) -> None:
        self.seen.append((f"{self.name}{step}", threading.get_ident(), connection.connection))


async def test_a_request_waiting_on_the_loop_gives_its_place_to_the_next_in_line() -> None:
    threads = WorkerThreads(limit=1)
    gate = asyncio.Event()
    waiting = WaitingHandler(threads, gate.wait)
    first = asyncio.create_task(waiting(HTTP_SCOPE, None, None))
    await _until(lambda: len(waiting.seen) == 1)
    await asyncio.sleep(0.05)  # well past ``after``: the place is given up when someone comes

    other = RecordingHandler(threads)
    await asyncio.wait_for(other(HTTP_SCOPE, None, None), timeout=5)  # served while the first waits

    assert not first.done()
    assert threads.turns.busy == 0  # the waiting request holds no place
    gate.set()
    await asyncio.wait_for(first, timeout=5)
    (_, before, _), (_, after, _) = waiting.seen
    assert before == after  # its sync code stayed in its one thread
    assert other.seen[0] != before  # the other had a thread of its own meanwhile
    assert threads.started == 2
    assert threads.alive == 1  # the thread beyond the limit was retired, not kept idle
    assert threads.turns.busy == 0 and not threads.turns.waiting and not threads.turns.yielding


async def test_a_request_that_gave_its_place_up_is_first_in_line_again() -> None:
    threads = WorkerThreads(limit=1)
    order: list[str] = []
    gate, hold = asyncio.Event(), threading.Event()

    class Waiting(WaitingHandler):
        def _note(self, step: str) -> None:
            super()._note(step)
            order.append(f"waiting {step}")

    waiting = Waiting(threads, gate.wait)

    class Holding(PooledThreadsASGIHandler):
        async def handle(self, scope: Any, receive: Any, send: Any) -> None:
            await sync_to_async(self._hold)()

        def _hold(self) -> None:
            order.append("holding")
            hold.wait(timeout=5)

    class Queued(PooledThreadsASGIHandler):
        async def handle(self, scope: Any, receive: Any, send: Any) -> None:
            await sync_to_async(order.append)("queued")

    first = asyncio.create_task(waiting(HTTP_SCOPE, None, None))
    await _until(lambda: len(waiting.seen) == 1)
    holding = asyncio.create_task(Holding(threads)(HTTP_SCOPE, None, None))
    await _until(lambda: order == ["waiting before", "holding"])  # the place the first gave up
    queued = asyncio.create_task(Queued(threads)(HTTP_SCOPE, None, None))
    await _until(lambda: len(threads.turns.waiting) == 1)
    gate.set()  # the first's wait is over: it asks for a place again, after the queued one
    await _until(lambda: len(threads.turns.waiting) == 2)
    hold.set()
    await asyncio.wait_for(asyncio.gather(first, holding, queued), timeout=5)
    assert order == ["waiting before", "holding", "waiting after", "queued"]


async def test_a_short_wait_keeps_its_place() -> None:
    """A wait shorter than ``after`` (the offline moderator's, say) gives nothing up."""
    threads = WorkerThreads(limit=1)
    waiting = WaitingHandler(threads, lambda: asyncio.sleep(0))
    other = RecordingHandler(threads)
    # Started in this order: the first takes the place, the other waits for it.
    await asyncio.gather(waiting(HTTP_SCOPE, None, None), other(HTTP_SCOPE, None, None))
    assert threads.started == 1  # the other waited for the first's thread
    assert [step for step, _, _ in waiting.seen] == ["before", "after"]


async def test_a_wait_that_is_usually_short_keeps_its_place_until_it_runs_long() -> None:
    """Given up with little of the wait left, the place costs the one who gave it more than it
    gains the next (bench/README.md): kept until the wait is ``worth`` past its usual."""
    threads = WorkerThreads(limit=1)
    times = WaitTimes()
    times.add(0.02)  # this kind of wait is usually over in 20 ms
    loop = asyncio.get_running_loop()
    opened, waits_began = asyncio.Event(), []

    def gate() -> Awaitable[Any]:
        waits_began.append(loop.time())
        return opened.wait()

    waiting = WaitingHandler(threads, gate, times=times, worth=0.2)
    first = asyncio.create_task(waiting(HTTP_SCOPE, None, None))
    await _until(lambda: len(waits_began) == 1)
    await asyncio.wait_for(RecordingHandler(threads)(HTTP_SCOPE, None, None), timeout=5)

    assert loop.time() - waits_began[0] > 0.2  # not at ``after`` (10 ms), nor at the usual 20 ms
    assert not first.done()  # but given up while the first still waits, once it ran long
    opened.set()
    await asyncio.wait_for(first, timeout=5)
    assert times.usual is not None and times.usual > 0.02  # this long wait counts in the usual


def test_how_long_a_place_is_kept_depends_on_how_long_such_waits_usually_last() -> None:
    assert _kept_for(None, 0.01, 0.1) == 0.01
    assert _kept_for(WaitTimes(), 0.01, 0.1) == 0.01  # none seen yet: given up early
    slow = WaitTimes()
    slow.add(0.3)  # a moderator across the internet: much of the wait is still ahead
    assert _kept_for(slow, 0.01, 0.1) == 0.01
    quick = WaitTimes()
    quick.add(0.05)
    assert _kept_for(quick, 0.01, 0.1) == pytest.approx(0.15)


def test_usual_wait_times_lean_on_the_latest() -> None:
    times = WaitTimes(weight=0.5)
    times.add(0.1)
    assert times.usual == pytest.approx(0.1)
    times.add(0.3)
    assert times.usual == pytest.approx(0.2)
    times.add(0.3)
    assert times.usual == pytest.approx(0.25)


async def test_a_wait_given_up_on_is_not_counted() -> None:
    threads, times = WorkerThreads(limit=1), WaitTimes()
    waiting = asyncio.create_task(threads.aside_while(asyncio.Event().wait(), times=times))
    await asyncio.sleep(0)
    waiting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiting
    await asyncio.sleep(0)  # done callbacks run on the next turn of the loop
    assert times.usual is None
    assert await threads.aside_while(asyncio.sleep(0.01, result="read"), times=times) == "read"
    await asyncio.sleep(0)
    assert times.usual is not None and times.usual > 0.009


async def test_outside_a_lent_request_the_wait_is_just_awaited() -> None:
    threads = WorkerThreads(limit=1)
    assert await threads.aside_while(asyncio.sleep(0.02, result="read")) == "read"
    async with WORKER_THREADS.lent():  # another pool's place is not this pool's to give
        assert await threads.aside_while(asyncio.sleep(0.02, result="read")) == "read"
    assert threads.started == 0


async def test_a_task_that_outlives_its_request_has_no_place_to_give() -> None:
    """It inherited the request's context; the place ended with the request."""
    threads = WorkerThreads(limit=1)
    gate = asyncio.Event()
    async with threads.lent():
        outliving = asyncio.create_task(threads.aside_while(gate.wait()))
        await asyncio.sleep(0)  # under way inside the request
    async with threads.lent():  # the next request has the only place
        queued = asyncio.create_task(_borrow_briefly(threads))
        await asyncio.sleep(0.05)  # well past ``after``
        assert not queued.done()  # nobody gave this block's place away
        assert threads.turns.busy == 1
    gate.set()
    await asyncio.wait_for(asyncio.gather(outliving, queued), timeout=5)
    assert threads.turns.busy == 0 and threads.turns.most_busy == 1


@pytest.mark.django_db(transaction=True)
async def test_a_request_that_gives_its_place_up_closes_its_thread_s_connection() -> None:
    """A thread beside the places holds no database connection: the pool's limit still bounds them."""
    if connection.vendor == "sqlite":
        pytest.skip("Django never closes an in-memory SQLite database's connection (it would lose it)")
    threads = WorkerThreads(limit=1)
    gate = asyncio.Event()

    class Querying(WaitingHandler):
        def _note(self, step: str) -> None:
            if step == "before":
                get_user_model().objects.exists()
            super()._note(step)

    waiting = Querying(threads, gate.wait)
    first = asyncio.create_task(waiting(HTTP_SCOPE, None, None))
    await _until(lambda: len(waiting.seen) == 1)
    await asyncio.wait_for(RecordingHandler(threads)(HTTP_SCOPE, None, None), timeout=5)
    gate.set()
    await asyncio.wait_for(first, timeout=5)
    (_, _, opened), (_, _, after) = waiting.seen
    assert opened is not None
    assert after is None  # closed when it gave its place up; opened again only if used


@pytest.mark.django_db(transaction=True)
async def test_a_request_inside_a_transaction_keeps_its_place_while_it_waits() -> None:
    """Its connection cannot be closed mid-transaction, so it gives nothing up."""
    threads = WorkerThreads(limit=1)

    class InTransaction(PooledThreadsASGIHandler):
        async def handle(self, scope: Any, receive: Any, send: Any) -> None:
            await sync_to_async(self._work)()

        def _work(self) -> None:
            with transaction.atomic():
                get_user_model().objects.exists()
                # As a sync view's check of typed words waits: on the loop, from its thread.
                async_to_sync(threads.aside_while)(asyncio.sleep(0.2))

    async def later() -> None:
        await _until(lambda: threads.turns.busy == 1)
        await asyncio.sleep(0.05)  # the first is waiting by now, well past ``after``
        await RecordingHandler(threads)(HTTP_SCOPE, None, None)

    await asyncio.wait_for(asyncio.gather(InTransaction(threads)(HTTP_SCOPE, None, None), later()), 5)
    assert threads.started == 1  # the other waited for the first's thread


class HeldModerator(OfflineModerator):
    """Reads a family's typed words once the test lets it, as a moderator across the internet
    answers a while later."""

    reading: ClassVar[asyncio.Event]
    answer: ClassVar[asyncio.Event]

    async def check_typed_words(self, text: str, *, language: Language) -> Verdict:
        type(self).reading.set()
        await type(self).answer.wait()
        return await super().check_typed_words(text, language=language)


@pytest.mark.django_db(transaction=True)
async def test_a_make_request_waiting_for_the_moderator_lets_other_requests_through(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the real app: the make POST's async view waits for the child's words to be read
    while holding the pool's only place; a page load is answered meanwhile, then the page starts."""
    cookie, _user_id, draft_id = await sync_to_async(_signed_in_with_a_book)()
    page = await _get(f"/drafts/{draft_id}/", cookie=cookie)
    csrf = _cookie_value(page, b"csrftoken")
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "MODERATOR": f"{__name__}.HeldModerator"}
    HeldModerator.reading, HeldModerator.answer = asyncio.Event(), asyncio.Event()
    monkeypatch.setattr(WORKER_THREADS, "_limit", 1)

    make = asyncio.create_task(
        _get(
            reverse("books:make_page", args=[draft_id, 1]),
            method="POST",
            body=b"child_input=a+kite+on+the+moon",
            cookie=cookie + b"; csrftoken=" + csrf,
            headers=[
                (b"x-csrftoken", csrf),
                (b"origin", b"http://localhost"),
                (b"content-type", b"application/x-www-form-urlencoded"),
            ],
        )
    )
    await asyncio.wait_for(HeldModerator.reading.wait(), timeout=10)
    mine = await asyncio.wait_for(_get("/mine/", cookie=cookie), timeout=5)
    assert mine["status"] == 200
    assert not make.done()  # still waiting for the moderator

    HeldModerator.answer.set()
    made = await asyncio.wait_for(make, timeout=10)
    assert made["status"] == 302  # a plain form goes on to the live tabs: the page has started
    await runs.settle(draft_id)
    kept = await sync_to_async(drafts.current)(_user_id)
    assert kept is not None and len(kept.pages) == 1
    assert WORKER_THREADS.turns.busy == 0 and not WORKER_THREADS.turns.waiting
