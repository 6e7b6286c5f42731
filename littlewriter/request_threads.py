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

At most ``LW_WORKER_THREADS`` requests are in threads at once (the rest wait their turn on
the loop), so a process holds at most that many database connections for its requests, however
many arrive together. Page runs (``streaming.runs``) hold no thread: each of their sync calls
borrows one from a second pool (``LW_RUN_THREADS``) for that call alone. An async view that
waits on the loop for something slow (the moderator reading the child's words) gives its place
to the next request meanwhile, its thread's connection closed (``WorkerThreads.aside_while``).

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

import asyncio
import contextvars
import functools
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, closing
from typing import IO, Any

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.conf import settings
from django.core import signals
from django.core.exceptions import RequestAborted
from django.core.handlers.asgi import ASGIHandler, get_script_prefix
from django.db import close_old_connections, connections
from django.http import FileResponse, HttpResponseBase
from django.urls import set_script_prefix


class _Turns:
    """Who has a thread of the pool on one event loop, and who waits for one."""

    def __init__(self) -> None:
        self.busy = 0
        self.most_busy = 0
        self.waiting: deque[asyncio.Future[None]] = deque()
        # Borrowers that would give their place up as soon as someone waits for one.
        self.yielding: deque[asyncio.Future[None]] = deque()


class _Place:
    """A borrower's place in a pool's turns: held from its turn until its block ends, or given
    up meanwhile while it waits on the loop (``WorkerThreads.aside_while``)."""

    def __init__(self, threads: WorkerThreads, turns: _Turns) -> None:
        self.threads, self.turns = threads, turns
        self.held = True


# The place of the request whose code is running: its sync code's thread, and the async view
# that thread waits for on the loop (asgiref copies the context both ways).
_PLACE: contextvars.ContextVar[_Place | None] = contextvars.ContextVar("request_place", default=None)


class WaitTimes:
    """How long one kind of wait (the moderator's reading, say) has been taking lately: an
    average leaning on the latest, each new wait weighing ``weight``."""

    def __init__(self, weight: float = 0.2) -> None:
        self.weight = weight
        self.usual: float | None = None

    def add(self, seconds: float) -> None:
        self.usual = seconds if self.usual is None else self.usual + self.weight * (seconds - self.usual)


class WorkerThreads:
    """One-thread executors lent to one request (or call) at a time, on the event loop.

    At most ``limit`` are lent at once; a borrower beyond that waits its turn (first come,
    first served) on the loop, as a request waits for a free thread in a threaded WSGI
    server. Each thread keeps at most one connection per database, so the pool's limit is
    the most connections it holds: a burst of 200 "make this page" requests without one
    opened 200 and ran MariaDB's default ``max_connections`` (151) out.

    Turns are counted per event loop (a server process has one; tests start many), so a
    loop that closed with a thread lent takes its count with it.
    """

    def __init__(self, *, limit: int | Callable[[], int], name: str = "worker") -> None:
        self._limit = limit
        self.name = name
        self.idle: list[ThreadPoolExecutor] = []
        self.started = 0
        self.alive = 0  # threads started and not retired: idle, lent, or waiting beside a place
        self._turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Turns] = (
            weakref.WeakKeyDictionary()
        )

    @property
    def limit(self) -> int:
        """Read from the settings on first use (this module is imported before they are set up)."""
        if callable(self._limit):
            self._limit = max(1, self._limit())
        return self._limit

    @property
    def turns(self) -> _Turns:
        """The running loop's turns."""
        loop = asyncio.get_running_loop()
        turns = self._turns.get(loop)
        if turns is None:
            turns = self._turns[loop] = _Turns()
        return turns

    def _turn_now(self, turns: _Turns) -> bool:
        """Takes a place if one is free and no one is waiting for it."""
        if turns.busy < self.limit and not turns.waiting:
            turns.busy += 1
            turns.most_busy = max(turns.most_busy, turns.busy)
            return True
        return False

    async def _turn(self, turns: _Turns, *, first: bool = False) -> None:
        """Wait for a place: at the back of the line, or at its front (``first``)."""
        if self._turn_now(turns):
            return
        turn = asyncio.get_running_loop().create_future()
        self._queue(turns, turn, first=first)
        try:
            await turn  # resolved by ``_done``, which hands its place over: busy is unchanged
        except BaseException:
            if turn.done() and not turn.cancelled():
                self._done(turns)  # cancelled just as the place came: the next borrower has it
            else:
                turns.waiting.remove(turn)
            raise

    def _queue(self, turns: _Turns, turn: asyncio.Future[None], *, first: bool = False) -> None:
        """Line ``turn`` up for a place (``_done`` resolves it), and wake a borrower willing to
        give its place up (``aside_while``) now that someone waits."""
        if first:
            turns.waiting.appendleft(turn)
        else:
            turns.waiting.append(turn)
        while turns.yielding:
            willing = turns.yielding.popleft()
            if not willing.done():
                willing.set_result(None)
                break

    def _done(self, turns: _Turns) -> None:
        while turns.waiting:
            turn = turns.waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        turns.busy -= 1

    def _take(self) -> ThreadPoolExecutor:
        if self.idle:
            return self.idle.pop()
        self.started += 1
        self.alive += 1
        return ThreadPoolExecutor(max_workers=1, thread_name_prefix=self.name)

    def _put_back(self, thread: ThreadPoolExecutor) -> None:
        if self.alive > self.limit:
            # More threads than places: one waited beside its place (``aside_while``) while
            # another took it. Kept idle, each would keep a database connection open.
            self._retire(thread)
        else:
            self.idle.append(thread)

    def _retire(self, thread: ThreadPoolExecutor) -> None:
        self.alive -= 1
        thread.submit(connections.close_all)  # the connections belong to that thread
        thread.shutdown(wait=False)

    @asynccontextmanager
    async def lent(self) -> AsyncIterator[ThreadPoolExecutor]:
        """The block's thread-sensitive sync calls, in order, in one borrowed thread of its own (yielded).

        Tasks the block starts must end inside it (asgiref refuses their calls after). A block
        that ends with an exception may have left a call running in the thread (a cancelled
        ``sync_to_async`` does not stop its function): that thread goes to no one else, and
        closes its connections once the call is over.
        """
        turns = self.turns
        await self._turn(turns)
        place = _Place(self, turns)
        thread = self._take()
        try:
            async with ThreadSensitiveContext(executor=thread):
                lent_here = _PLACE.set(place)
                try:
                    yield thread
                finally:
                    _PLACE.reset(lent_here)
        except BaseException:
            self._retire(thread)
            raise
        else:
            self._put_back(thread)
        finally:
            if place.held:
                place.held = False  # a task this block started and left running has none to give
                self._done(turns)

    async def aside_while[T](
        self,
        awaitable: Awaitable[T],
        *,
        times: WaitTimes | None = None,
        after: float = 0.01,
        worth: float = 0.1,
    ) -> T:
        """Await ``awaitable``, giving the request's place to the next in line if it takes a while.

        For an async view's wait on the loop for something slow (a moderator across the
        internet): its thread only waits meanwhile, yet holds one of the pool's places, and with
        a slow moderator a burst of families queued behind those waits (bench/README.md). Once
        it has waited long enough, as soon as another request is waiting, the thread's database
        connections are closed (a thread beside the places holds none; inside a transaction
        nothing is given up) and its place goes to that request; once ``awaitable`` is done,
        the request waits for a place again, at the front of the line, before it goes on.

        Long enough: ``after`` seconds when such waits (``times``, which this one is added to)
        usually last at least ``worth`` more, or none has been seen yet; when they are usually
        shorter, only once this one has run ``worth`` past the usual. Giving a place up with
        40 ms of the wait left cost a burst of 50 families 100-300 ms (the ones who gave up
        waited for a place again behind the ones who took theirs), with 290 ms left it saved a
        burst of 200 seconds (bench/README.md). Outside a request lent by this pool, just
        ``await awaitable``.
        """
        loop = asyncio.get_running_loop()
        waited = asyncio.ensure_future(awaitable)
        if times is not None:
            waited.add_done_callback(functools.partial(_timed, times, loop.time()))
        place = _PLACE.get()
        if place is None or place.threads is not self or not place.held:
            return await waited
        asked: asyncio.Future[None] = loop.create_future()  # someone waits for a place
        try:
            await asyncio.wait({waited}, timeout=_kept_for(times, after, worth))
            if not waited.done() and not place.turns.waiting:
                place.turns.yielding.append(asked)
                either: set[asyncio.Future[Any]] = {waited, asked}
                await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            # In the request's own thread; a transaction's connection is kept, and so is the place.
            if waited.done() or not place.held or not await sync_to_async(_let_connections_go)():
                return await waited
            place.held = False
            self._done(place.turns)
            try:
                return await waited
            finally:
                # First in line: it has its thread already, and ending frees it for the next.
                await self._turn(place.turns, first=True)  # raises if cancelled: no place held
                place.held = True
        finally:
            if asked in place.turns.yielding:
                place.turns.yielding.remove(asked)  # no longer willing
            if not waited.done():
                waited.cancel()

    def lend_for[T](self, function: Callable[[], T], outcome: Future[T], then: Callable[[], None]) -> None:
        """On the loop: ``function()`` in a thread borrowed for that call alone, once one is free.

        Its result (or error) goes into ``outcome`` from the thread, as a plain executor's
        would (the caller wakes one trip through the loop sooner than if it were set there);
        the thread then goes back to the pool on the loop and ``then()`` is called. The
        thread's old or broken database connections are replaced first, as
        ``request_started`` does for a request.
        """
        loop = asyncio.get_running_loop()
        turns = self.turns

        def start(_: object = None) -> None:
            thread = self._take()

            def run() -> None:
                try:
                    close_old_connections()
                    outcome.set_result(function())
                except BaseException as error:
                    outcome.set_exception(error)
                finally:
                    loop.call_soon_threadsafe(finished, thread)

            thread.submit(run)

        def finished(thread: ThreadPoolExecutor) -> None:
            self._put_back(thread)
            self._done(turns)
            then()

        if self._turn_now(turns):
            start()
        else:
            turn = loop.create_future()
            turn.add_done_callback(start)  # when ``_done`` hands a place over
            self._queue(turns, turn)


def leave_the_requests_place() -> None:
    """For a task that outlives the request that started it (a page run): the request's place,
    which it inherited with the request's context, is not its own to give up."""
    _PLACE.set(None)


def _timed(times: WaitTimes, began: float, done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        times.add(done.get_loop().time() - began)


def _kept_for(times: WaitTimes | None, after: float, worth: float) -> float:
    """How long ``aside_while`` keeps its place before it is willing to give it up."""
    usual = times.usual if times is not None else None
    if usual is None or usual - after >= worth:
        return after
    return max(after, usual + worth)


def _let_connections_go() -> bool:
    """Close this thread's database connections, unless one is in a transaction (then none)."""
    if any(each.in_atomic_block for each in connections.all(initialized_only=True)):
        return False
    connections.close_all()
    return True


class BorrowedThreadCalls(Executor):
    """An executor for asgiref that runs each call in a thread borrowed for that call alone.

    For work that lives long and calls sync code now and then (a page run: a heartbeat every
    two seconds, the picture kept, the page kept at the end): it holds no thread, and no
    database connection, while it waits for its upstreams. Calls run one at a time, in the
    order they were made, as they would in one thread of their own. ``submit`` is called on
    the event loop (``loop.run_in_executor``), where the borrowing happens.
    """

    def __init__(self, threads: WorkerThreads) -> None:
        self.threads = threads
        self.queued: deque[tuple[Future[Any], Callable[[], Any]]] = deque()
        self.calling = False

    def submit[T](self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        outcome: Future[T] = Future()
        self.queued.append((outcome, functools.partial(fn, *args, **kwargs)))
        if not self.calling:
            self._next()
        return outcome

    def _next(self) -> None:
        while self.queued:
            outcome, call = self.queued.popleft()
            if outcome.set_running_or_notify_cancel():  # else its caller stopped waiting
                self.calling = True
                self.threads.lend_for(call, outcome, then=self._next)
                return
        self.calling = False


def _worker_threads() -> int:
    return int(settings.LITTLEWRITER["WORKER_THREADS"])


def _run_threads() -> int:
    return int(settings.LITTLEWRITER["RUN_THREADS"])


# Requests and sockets' renders borrow from one pool; page runs' calls from another, so a
# request that waits for a run (a stop) can never hold the thread the run needs to end.
WORKER_THREADS = WorkerThreads(limit=_worker_threads)
RUN_THREADS = WorkerThreads(limit=_run_threads, name="run")


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
