"""Page runs belong to the server process, not to a socket.

A run is an asyncio task started by the "make this page" request. Closing or reloading
the browser tab neither stops nor loses it. While it runs it keeps the book's generation
lock alive; if the process dies the lock lapses within ``LOCK_SECONDS`` and the page can
be made again. A stop request reaches the run in whichever process holds it through a
flag in the cache that the run's heartbeat reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import connections

from books.drafts import LOCK_SECONDS, GenerationLock
from littlewriter.request_threads import WORKER_THREADS

log = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 2.0

_running: dict[str, asyncio.Task[Any]] = {}


def _stop_key(lock_token: str) -> str:
    # Addressed to one hold of the lock, so a stop never outlives its run or stops the next.
    return f"run:stop:{lock_token}"


def stop_key(draft_id: str) -> str:
    """The cache key of a draft's stop flag, for code that removes everything of a draft."""
    return _stop_key(draft_id)


def launch[T](draft_id: str, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run ``work`` in the background of this process; its failure is logged, not lost."""
    task = asyncio.create_task(_in_its_own_thread(work), name=f"page-run-{draft_id}")
    _running[draft_id] = task
    task.add_done_callback(lambda finished: _forget(draft_id, finished))
    return task


async def _in_its_own_thread[T](work: Coroutine[Any, Any, T]) -> T:
    """``work`` with its synchronous calls (cache, database) in one thread of its own.

    The run outlives the request that started it, and it inherited that request's context:
    left alone, its ``sync_to_async`` calls would go to the request's thread once the
    request is over, which asgiref refuses (or to a new thread per call site). A thread of
    the run's own keeps its calls in order, one at a time, as a request's are. It is borrowed
    from the process's worker threads. The database connection that thread kept from its
    last request is closed first: a run lives for seconds (much longer under load) and
    touches the database only as it ends, and a connection held all that time counts
    against the database's ``max_connections`` (200 live books ran MariaDB out of 600).
    The run does not wait for that close: its first requests upstream need no thread, and
    its first synchronous call queues behind the close in the thread anyway. Under load a
    trip to a thread is 10–30 ms, all of it before the page's slowest section could start.
    """
    async with WORKER_THREADS.lent() as thread:
        # Submitted to the thread before anything of the work, so it runs first there.
        closing = asyncio.get_running_loop().run_in_executor(thread, connections.close_all)
        try:
            return await work
        finally:
            await closing  # the thread goes back with nothing of this run left in it


def _forget(draft_id: str, task: asyncio.Task[Any]) -> None:
    if _running.get(draft_id) is task:
        del _running[draft_id]
    if not task.cancelled() and task.exception() is not None:
        # The run already told the book and the watchers; this keeps asyncio from warning.
        log.info("page run of draft %s ended with %r", draft_id, task.exception())


def running_here(draft_id: str) -> bool:
    task = _running.get(draft_id)
    return task is not None and not task.done()


async def request_stop(draft_id: str, *, user_id: int) -> None:
    """Stop the draft's run, here or in another server process (through its heartbeat)."""
    task = _running.get(draft_id)
    if task is not None and not task.done():
        task.cancel()
        return
    token = await sync_to_async(GenerationLock.holder)(user_id)
    if token is not None:
        await sync_to_async(cache.set)(_stop_key(token), 1, timeout=LOCK_SECONDS)


async def keep_alive(lock: GenerationLock, run: asyncio.Task[Any]) -> None:
    """Refresh the lock while the run lives; cancel the run when a stop was asked elsewhere.

    A stop asked before the first beat waits in the cache for it: none is lost.
    """
    while not run.done():
        await asyncio.sleep(HEARTBEAT_SECONDS)
        refreshed, stop = await sync_to_async(_beat)(lock)
        if stop or not refreshed:
            run.cancel()
            return


def _beat(lock: GenerationLock) -> tuple[bool, bool]:
    stop = bool(cache.get(_stop_key(lock.token)))
    if stop:
        cache.delete(_stop_key(lock.token))
    return lock.refresh(LOCK_SECONDS), stop


async def cancel_quietly(task: asyncio.Task[Any]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def settle(draft_id: str) -> None:
    """Wait until the draft's run in this process (if any) has ended, however it ended."""
    task = _running.get(draft_id)
    if task is not None:
        await asyncio.wait([task])
