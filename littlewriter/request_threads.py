"""Django's ASGI handler, with each request's synchronous code in one trip to a thread that is used again.

Django runs every request in a ``ThreadSensitiveContext`` of its own, and asgiref gives such
a context a new one-thread executor: a thread started for each request and left to end
after it, with a database connection of its own opened and closed each time (Django keeps
connections per thread). On a live page that is two requests a page, each paying for a
thread start and a connect. Here a request borrows an idle thread from a pool, one request
at a time per thread, as a threaded WSGI server does: the request's sync code is still run
in one thread, in order, apart from every other request's. With ``CONN_MAX_AGE`` the thread's
database connection is then used again too (Django checks its age and health at the start
and end of each request, ``close_old_connections``).

The pool grows with demand (a request never waits for a thread) and keeps at most
``IDLE_THREADS_KEPT`` idle threads; a thread beyond that closes its database connections and
ends. Page runs (``streaming.runs``) borrow from the same pool, a thread for a run's life.

And a request crosses between the event loop and its thread twice, not five times. Django's
async handler runs the sync middleware in the thread, comes back to the loop for the view's
dispatch (``_get_response_async``), goes to the thread again for a sync view, and makes a
trip each for ``request_started`` and for closing the response. Each crossing wakes both
sides and hands the GIL over; on a loop that every live page shares they were a quarter of
a small request's CPU. Here the thread does what Django's WSGI handler does (signal, request,
the sync middleware chain and the view) in one trip; the response is sent from the loop, then
closed in the thread. An async view still runs on the loop (Django's ``async_to_sync``).
Measured in bench/README.md.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager, closing
from typing import IO, Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import connections
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix

IDLE_THREADS_KEPT = 32


class WorkerThreads:
    """Idle one-thread executors, lent to one request (or page run) at a time, on the event loop."""

    def __init__(self, *, idle_kept: int = IDLE_THREADS_KEPT) -> None:
        self.idle_kept = idle_kept
        self.idle: list[ThreadPoolExecutor] = []
        self.started = 0

    def take(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        self.started += 1
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="worker")

    def give_back(self, thread: ThreadPoolExecutor) -> None:
        if len(self.idle) < self.idle_kept:
            self.idle.append(thread)
        else:
            self.retire(thread)

    def retire(self, thread: ThreadPoolExecutor) -> None:
        thread.submit(connections.close_all)  # the connections belong to that thread
        thread.shutdown(wait=False)

    @asynccontextmanager
    async def lent(self) -> AsyncIterator[ThreadPoolExecutor]:
        """The block's thread-sensitive sync calls, in order, in one borrowed thread of its own (yielded).

        Tasks the block starts must end inside it (asgiref refuses their calls after). A block
        that ends with an exception may have left a call running in the thread (a cancelled
        ``sync_to_async`` does not stop its function): that thread goes to no one else.
        """
        thread = self.take()
        try:
            async with ThreadSensitiveContext(executor=thread):
                yield thread
        except BaseException:
            self.retire(thread)
            raise
        self.give_back(thread)


# One pool for the process: requests and page runs.
WORKER_THREADS = WorkerThreads()


class PooledThreadsASGIHandler(ASGIHandler):
    def __init__(self, threads: WorkerThreads | None = None) -> None:
        super().__init__()
        self.load_middleware(is_async=False)  # the chain WSGI uses: all of it runs in the thread
        self.threads = threads or WORKER_THREADS

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        # ``handle`` returns once the response is sent and closed: nothing of this request uses
        # the thread after that. A page run outlives its request and borrows a thread of its
        # own (``streaming.runs``).
        async with self.threads.lent():
            await self.handle(scope, receive, send)

    async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        try:
            body_file = await self.read_body(receive)
        except RequestAborted:
            return
        with closing(body_file):
            response = await sync_to_async(self._respond)(scope, body_file)
            try:
                await self.send_response(response, send)
            finally:
                await sync_to_async(response.close)()  # sends request_finished

    def _respond(self, scope: dict[str, Any], body_file: IO[bytes]) -> HttpResponseBase:
        """In the request's thread: what ``ASGIHandler.handle`` does before sending, in sync mode."""
        set_script_prefix(get_script_prefix(scope))
        signals.request_started.send(sender=self.__class__, scope=scope)
        request, error_response = self.create_request(scope, body_file)
        if request is None:  # a bad request: Django made the response that says so
            assert error_response is not None
            return error_response
        response = self.get_response(request)
        response._handler_class = self.__class__  # type: ignore[attr-defined]
        if isinstance(response, FileResponse):
            response.block_size = self.chunk_size  # ASGI servers do the chunking
        return response
