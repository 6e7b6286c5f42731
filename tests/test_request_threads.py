"""Requests borrow a thread from a bounded pool, page runs one per call; one at a time per thread."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
from asgiref.sync import ThreadSensitiveContext, sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.db import connection

from books import drafts, pictures, services
from littlewriter import asgi
from littlewriter.request_threads import (
    RUN_THREADS,
    BorrowedThreadCalls,
    PooledThreadsASGIHandler,
    WorkerThreads,
)
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
