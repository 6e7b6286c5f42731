"""Django's ASGI handler, with each request's synchronous code in a thread that is used again.

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
ends. Measured in bench/README.md.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler
from django.db import connections

IDLE_THREADS_KEPT = 32


class RequestThreads:
    """Idle one-thread executors. Only the event loop's thread takes and gives them back."""

    def __init__(self, *, idle_kept: int = IDLE_THREADS_KEPT) -> None:
        self.idle_kept = idle_kept
        self.idle: list[ThreadPoolExecutor] = []
        self.started = 0

    def take(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        self.started += 1
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix="request")

    def give_back(self, thread: ThreadPoolExecutor) -> None:
        if len(self.idle) < self.idle_kept:
            self.idle.append(thread)
        else:
            self.retire(thread)

    def retire(self, thread: ThreadPoolExecutor) -> None:
        thread.submit(connections.close_all)  # the connections belong to that thread
        thread.shutdown(wait=False)


class PooledThreadsASGIHandler(ASGIHandler):
    def __init__(self, threads: RequestThreads | None = None) -> None:
        super().__init__()
        self.threads = threads or RequestThreads()

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        thread = self.threads.take()
        try:
            # ``handle`` waits for every task it starts (a TaskGroup), so nothing of this
            # request uses the thread after it is given back. A page run outlives its request
            # and has a thread of its own (``streaming.runs``).
            async with ThreadSensitiveContext(executor=thread):
                await self.handle(scope, receive, send)
        except BaseException:
            # Cancelled or failed, the request may still have a call running in the thread:
            # the thread is not given to another request, it ends after that call.
            self.threads.retire(thread)
            raise
        self.threads.give_back(thread)
