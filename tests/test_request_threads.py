"""Requests and page runs borrow a worker thread from a pool: one at a time per thread, used again after."""

from __future__ import annotations

import asyncio
import gc
import threading
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from channels.testing import HttpCommunicator
from django.contrib.auth import get_user_model
from django.db import connection

from books import drafts, pictures, services
from littlewriter import asgi
from littlewriter.request_threads import WORKER_THREADS, PooledThreadsASGIHandler, WorkerThreads
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
    threads = WorkerThreads()
    handler = RecordingHandler(threads)
    for _ in range(3):
        await handler(HTTP_SCOPE, None, None)
    assert threads.started == 1
    assert len(set(handler.seen)) == 1
    assert handler.seen[0] != threading.get_ident()
    assert len(threads.idle) == 1


async def test_requests_at_the_same_time_never_share_a_thread() -> None:
    threads = WorkerThreads()
    handler = RecordingHandler(threads, meet=threading.Barrier(2))
    await asyncio.gather(handler(HTTP_SCOPE, None, None), handler(HTTP_SCOPE, None, None))
    assert threads.started == 2
    assert len(set(handler.seen)) == 2  # each request's two calls in its own thread
    assert len(threads.idle) == 2
    handler.meet = None
    await handler(HTTP_SCOPE, None, None)
    assert threads.started == 2  # the next request borrows one of them


async def test_only_so_many_idle_threads_are_kept() -> None:
    threads = WorkerThreads(idle_kept=1)
    handler = RecordingHandler(threads, meet=threading.Barrier(2))
    await asyncio.gather(handler(HTTP_SCOPE, None, None), handler(HTTP_SCOPE, None, None))
    assert len(threads.idle) == 1
    survivor = threads.idle[0]
    ended = [ident for ident in set(handler.seen) if ident != _ident_of(survivor)]
    assert len(ended) == 1
    for thread in threading.enumerate():
        if thread.ident == ended[0]:
            thread.join(timeout=5)
            assert not thread.is_alive()


async def test_a_failed_request_does_not_give_its_thread_to_another() -> None:
    threads = WorkerThreads()
    with pytest.raises(RuntimeError, match="the view broke"):
        await FailingHandler(threads)(HTTP_SCOPE, None, None)
    assert threads.idle == []
    handler = RecordingHandler(threads)
    await handler(HTTP_SCOPE, None, None)
    assert threads.started == 2


async def test_only_http_is_handled() -> None:
    with pytest.raises(ValueError, match="websocket"):
        await PooledThreadsASGIHandler(WorkerThreads())({"type": "websocket"}, None, None)


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
async def test_page_runs_borrow_a_worker_thread_and_give_it_back() -> None:
    parent: Any = await sync_to_async(make_parent)("run-thread-parent")
    draft = await sync_to_async(start_book_with_child)(
        parent, characters=[("Mina", "a cat")], page_count=3, language="en"
    )
    started = WORKER_THREADS.started
    for number in (1, 2):
        await services.make_next_page(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=number, child_input="a kite flies away"
        )
        assert WORKER_THREADS.idle  # the run's thread is back, for a request or the next run
    # The second run (and this test's own calls) used the thread the first one gave back.
    assert WORKER_THREADS.started - started <= 1
    kept = await sync_to_async(drafts.current)(parent.pk)
    assert kept is not None and len(kept.pages) == 2


@pytest.mark.django_db(transaction=True)
async def test_a_run_works_without_the_connection_its_thread_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    """The borrowed thread's connections are closed before the run's first call there."""
    threads = WorkerThreads()
    monkeypatch.setattr(runs, "WORKER_THREADS", threads)
    async with threads.lent() as thread:
        await sync_to_async(_open_a_connection)()
    assert threads.idle == [thread]  # given back holding its connection, and lent next
    calls: list[tuple[str, int]] = []
    close_all = runs.connections.close_all

    def closing_all() -> None:
        calls.append(("close", threading.get_ident()))
        close_all()

    monkeypatch.setattr(runs.connections, "close_all", closing_all)

    async def work() -> Any:
        return await sync_to_async(_first_call_of_the_run)(calls)

    held = await runs.launch("connection-test", work())
    assert calls == [("close", _ident_of(thread)), ("work", _ident_of(thread))]
    if not getattr(connection, "is_in_memory_db", lambda: False)():  # Django never closes those
        assert held is None
    assert threads.idle == [thread]  # back in the pool once the run ended


def _open_a_connection() -> None:
    get_user_model().objects.exists()
    assert connection.connection is not None


def _first_call_of_the_run(calls: list[tuple[str, int]]) -> Any:
    calls.append(("work", threading.get_ident()))
    return connection.connection


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
