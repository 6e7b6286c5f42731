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

from asgiref.sync import ThreadSensitiveContext, sync_to_async
from django.core.cache import cache

from books.drafts import LOCK_SECONDS, GenerationLock
from littlewriter.request_threads import RUN_THREADS, BorrowedThreadCalls, leave_the_requests_place

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
    """``work`` with its synchronous calls (cache, database, storage) one at a time, in order.

    The run outlives the request that started it, and it inherited that request's context:
    left alone, its ``sync_to_async`` calls would go to the request's thread once the
    request is over, which asgiref refuses (or to a new thread per call site). Here each of
    its calls borrows a thread of the run pool for that call alone: a run waits seconds for
    its upstreams (much longer under load) between a few short calls (a heartbeat every
    two seconds, the picture kept, the page kept). A thread held for the run's life was a
    thread per live book, each opening a database connection as its page was kept: 200
    books at once ran MariaDB's default ``max_connections`` (151) out.
    """
    leave_the_requests_place()
    async with ThreadSensitiveContext(executor=BorrowedThreadCalls(RUN_THREADS)):
        return await work


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
