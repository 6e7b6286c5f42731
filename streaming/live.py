"""Live state of a page being made, and its fan-out to every socket watching it.

A run numbers every delta per book (``seq``) and folds it into a snapshot of all
sections. Deltas are coalesced into *frames* (at most one every ``FRAME_SECONDS`` per
book, the first piece of a quiet book goes out at once). Each frame is handed to the
hub, which first stores the snapshot and then fans the frame out, so that a socket that
subscribes, then reads the snapshot, then takes only frames newer than it, misses
nothing and repeats nothing.

Hubs: ``LocalHub`` (one process; the embedded default) and ``RedisHub`` (a Redis
pub/sub channel per book, one subscription per process fanned out locally, the snapshot
in a Redis key written in the same round trip as the frame). Measured in
``bench/live_pages.py``: one channel-layer ``group_send`` per frame costs far more.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import weakref
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from streaming.sections import BY_NAME, Section, SectionStatus, sections_for

log = logging.getLogger(__name__)

FRAME_SECONDS = 0.05
SNAPSHOT_TTL_SECONDS = 6 * 3600


class RunState(StrEnum):
    RUNNING = "running"
    COMPLETE = "complete"
    NEEDS_ATTENTION = "needs_attention"
    STOPPED = "stopped"
    INTERRUPTED = "interrupted"


@dataclass
class SectionState:
    status: SectionStatus = SectionStatus.NOT_STARTED
    text: str = ""
    reason: str = ""
    picture: str = ""
    """Storage name of the section's picture, once drawn."""

    @property
    def picture_file(self) -> str:
        return self.picture.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Delta:
    seq: int
    section: str
    kind: str
    """"text" (a piece to append), "status", "picture" or "run" (the run's own state)."""
    text: str = ""
    status: str = ""
    reason: str = ""
    picture: str = ""


@dataclass
class LiveSnapshot:
    draft_id: str
    page_number: int
    run_id: str
    child_input: str = ""
    source: str = "ai"
    seq: int = 0
    state: RunState = RunState.RUNNING
    reason: str = ""
    sections: dict[str, SectionState] = field(default_factory=dict)

    @classmethod
    def start(
        cls,
        *,
        draft_id: str,
        page_number: int,
        run_id: str,
        child_input: str,
        is_last_page: bool,
        source: str = "ai",
        seq: int = 0,
        previous: LiveSnapshot | None = None,
        rerun: set[str] | None = None,
    ) -> LiveSnapshot:
        """A new run's snapshot; numbering goes on from the last run so open sockets keep up.

        A retry (``previous`` and ``rerun`` given) keeps the sections it does not run again.
        """
        sections = {s.name: SectionState() for s in sections_for(is_last_page=is_last_page)}
        if previous is not None and rerun is not None:
            for name in sections:
                if name not in rerun and name in previous.sections:
                    sections[name] = previous.sections[name]
            child_input = child_input or previous.child_input
        return cls(
            draft_id=draft_id,
            page_number=page_number,
            run_id=run_id,
            child_input=child_input,
            source=source,
            seq=seq,
            sections=sections,
        )

    @property
    def is_active(self) -> bool:
        return self.state is RunState.RUNNING

    @property
    def tabs(self) -> list[tuple[Section, SectionState]]:
        """The sections in the order of the tabs, each with its state (for templates)."""
        return [(BY_NAME[name], state) for name, state in self.sections.items() if name in BY_NAME]

    @property
    def open_tab(self) -> str:
        """The tab shown when the tabs are drawn: while a run is on, the first part still being
        made (a retried picture, not the story already written); after it, the first part that
        needs a retry; else the first."""
        if self.is_active:
            unfinished = [n for n, s in self.sections.items() if s.status is not SectionStatus.COMPLETE]
            if unfinished:
                return unfinished[0]
        elif failed := self.failed_sections:
            return failed[0]
        return next(iter(self.sections), "")

    @property
    def failed_sections(self) -> list[str]:
        return [name for name, state in self.sections.items() if state.status is SectionStatus.UNHEALTHY]

    def apply(self, delta: Delta) -> None:
        self.seq = delta.seq
        if delta.kind == "run":
            self.state, self.reason = RunState(delta.status), delta.reason
            return
        section = self.sections.setdefault(delta.section, SectionState())
        if delta.kind == "text":
            section.text += delta.text
        elif delta.kind == "picture":
            section.picture = delta.picture
        elif delta.kind == "status":
            section.status, section.reason = SectionStatus(delta.status), delta.reason
            if section.status is SectionStatus.STREAMING:
                # A retried section starts again from nothing.
                section.text, section.picture = "", ""

    def to_json(self) -> str:
        # What ``asdict`` gives, without its deep copy: written with every frame of every book.
        return json.dumps({**vars(self), "sections": {name: vars(s) for name, s in self.sections.items()}})

    @classmethod
    def from_json(cls, raw: str | bytes) -> LiveSnapshot:
        data = json.loads(raw)
        sections = {
            name: SectionState(**{**value, "status": SectionStatus(value["status"])})
            for name, value in data.pop("sections").items()
        }
        return cls(**{**data, "state": RunState(data["state"])}, sections=sections)


def frame_to_json(draft_id: str, deltas: list[Delta]) -> str:
    return json.dumps({"draft": draft_id, "deltas": [vars(d) for d in deltas]}, separators=(",", ":"))


def frame_from_json(raw: str | bytes) -> tuple[str, list[Delta]]:
    data = json.loads(raw)
    return data["draft"], [Delta(**d) for d in data["deltas"]]


FrameHandler = Callable[[list[Delta]], Awaitable[None]]


class LiveHub:
    """Stores snapshots and fans frames out; one instance per process (and event loop)."""

    async def publish(self, snapshot: LiveSnapshot, deltas: list[Delta]) -> None:
        """Store ``snapshot`` (which already includes ``deltas``), then deliver the frame."""
        raise NotImplementedError

    async def snapshot(self, draft_id: str) -> LiveSnapshot | None:
        """The newest stored snapshot of the draft's page run, if any."""
        raise NotImplementedError

    async def watch(self, draft_id: str, handler: FrameHandler) -> None:
        """Deliver every frame published after this returns to ``handler``."""
        raise NotImplementedError

    async def unwatch(self, draft_id: str, handler: FrameHandler) -> None:
        """Stop delivering to ``handler``."""
        raise NotImplementedError

    async def forget(self, draft_id: str) -> None:
        """Drop the stored snapshot (the draft is gone)."""
        raise NotImplementedError


class _LocalFanOut:
    """The handlers of this process, by draft; one slow socket never holds up the others."""

    def __init__(self) -> None:
        self.handlers: dict[str, set[FrameHandler]] = {}

    def add(self, draft_id: str, handler: FrameHandler) -> bool:
        """Returns True when this is the process's first watcher of the draft."""
        handlers = self.handlers.setdefault(draft_id, set())
        handlers.add(handler)
        return len(handlers) == 1

    def remove(self, draft_id: str, handler: FrameHandler) -> bool:
        """Returns True when no watcher of the draft is left in this process."""
        handlers = self.handlers.get(draft_id)
        if handlers is None:
            return False
        handlers.discard(handler)
        if handlers:
            return False
        del self.handlers[draft_id]
        return True

    async def deliver(self, draft_id: str, deltas: list[Delta]) -> None:
        handlers = list(self.handlers.get(draft_id, ()))
        if len(handlers) == 1:
            await _safely(handlers[0], deltas)
        elif handlers:
            await asyncio.gather(*(_safely(h, deltas) for h in handlers))


class _DeliveryQueues:
    """Frames in order per draft, drafts side by side.

    The Redis reader takes every book's frames from one subscription; awaiting each
    delivery there would make every book wait for the slowest socket of any book (a
    socket that resyncs reads a snapshot from Redis first). Each draft gets a queue
    drained by its own task, alive only while frames are waiting.
    """

    def __init__(self, fan_out: _LocalFanOut) -> None:
        self.fan_out = fan_out
        self.waiting: dict[str, list[list[Delta]]] = {}
        self.drainers: set[asyncio.Task[None]] = set()

    def put(self, draft_id: str, deltas: list[Delta]) -> None:
        queue = self.waiting.get(draft_id)
        if queue is not None:
            queue.append(deltas)  # its drainer is running and will take this too
            return
        self.waiting[draft_id] = [deltas]
        drainer = asyncio.create_task(self._drain(draft_id), name=f"live-deliver-{draft_id}")
        self.drainers.add(drainer)  # held so the task is not collected mid-run
        drainer.add_done_callback(self.drainers.discard)

    async def _drain(self, draft_id: str) -> None:
        queue = self.waiting[draft_id]
        try:
            while queue:
                await self.fan_out.deliver(draft_id, queue.pop(0))
        finally:
            del self.waiting[draft_id]

    async def close(self) -> None:
        for drainer in list(self.drainers):
            drainer.cancel()
        await asyncio.gather(*self.drainers, return_exceptions=True)


async def _safely(handler: FrameHandler, deltas: list[Delta]) -> None:
    try:
        await handler(deltas)
    except Exception:
        log.exception("a live watcher failed to take a frame")


# Snapshots of the local hub are process-wide: page views (in threads) read them too.
_local_snapshots: dict[str, str] = {}


class LocalHub(LiveHub):
    """Everything in this process: the embedded default (one server process)."""

    def __init__(self) -> None:
        self.fan_out = _LocalFanOut()
        self.snapshots = _local_snapshots

    async def publish(self, snapshot: LiveSnapshot, deltas: list[Delta]) -> None:
        # Stored as JSON, as Redis would: a watcher never shares the run's live object.
        self.snapshots[snapshot.draft_id] = snapshot.to_json()
        await self.fan_out.deliver(snapshot.draft_id, deltas)

    async def snapshot(self, draft_id: str) -> LiveSnapshot | None:
        raw = self.snapshots.get(draft_id)
        return LiveSnapshot.from_json(raw) if raw else None

    async def watch(self, draft_id: str, handler: FrameHandler) -> None:
        self.fan_out.add(draft_id, handler)

    async def unwatch(self, draft_id: str, handler: FrameHandler) -> None:
        self.fan_out.remove(draft_id, handler)

    async def forget(self, draft_id: str) -> None:
        self.snapshots.pop(draft_id, None)


class _Outbox:
    """Every book's frames of this process go to Redis together, a group commit.

    While one pipeline is on its way, the frames published meanwhile gather and go in the
    next one, so a quiet process sends each frame at once and a busy one sends one round
    trip for many books instead of one per frame (a round trip per frame per book was the
    largest share of publishing at 50 books). Each book has at most one frame in flight
    (``LivePublisher`` awaits it), so a book's frames stay in order.
    """

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.waiting: list[tuple[str, str, str, str, asyncio.Future[None]]] = []
        self.sender: asyncio.Task[None] | None = None

    async def send(self, key: str, snapshot: str, channel: str, frame: str) -> None:
        sent: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiting.append((key, snapshot, channel, frame, sent))
        if self.sender is None or self.sender.done():
            self.sender = asyncio.create_task(self._send_all(), name="live-hub-outbox")
        await sent

    async def _send_all(self) -> None:
        while self.waiting:
            batch, self.waiting = self.waiting, []
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for key, snapshot, channel, frame, _ in batch:
                        pipe.set(key, snapshot, ex=SNAPSHOT_TTL_SECONDS)
                        pipe.publish(channel, frame)
                    await pipe.execute()
            except Exception as error:
                for *_, sent in batch:
                    if not sent.done():
                        sent.set_exception(error)
            else:
                for *_, sent in batch:
                    if not sent.done():
                        sent.set_result(None)

    async def close(self) -> None:
        if self.sender is not None:
            await asyncio.gather(self.sender, return_exceptions=True)


class RedisHub(LiveHub):
    """Redis: snapshot key + pub/sub channel per draft, one subscription per process."""

    def __init__(self, url: str, prefix: str) -> None:
        import redis.asyncio as redis

        # redis-py's pool stops at 100 connections and raises instead of waiting.
        self.redis = redis.Redis.from_url(url, max_connections=10000)
        self.prefix = prefix
        self.fan_out = _LocalFanOut()
        self.deliveries = _DeliveryQueues(self.fan_out)
        self.outbox = _Outbox(self.redis)
        self.pubsub = self.redis.pubsub()
        self.confirmed: dict[str, asyncio.Event] = {}
        self.reader: asyncio.Task[None] | None = None
        self.lock = asyncio.Lock()

    def snapshot_key(self, draft_id: str) -> str:
        return f"{self.prefix}:live:snapshot:{draft_id}"

    def channel(self, draft_id: str) -> str:
        return f"{self.prefix}:live:frames:{draft_id}"

    async def publish(self, snapshot: LiveSnapshot, deltas: list[Delta]) -> None:
        # SET before PUBLISH so a watcher that missed this frame finds it in the snapshot it
        # reads after subscribing.
        await self.outbox.send(
            self.snapshot_key(snapshot.draft_id),
            snapshot.to_json(),
            self.channel(snapshot.draft_id),
            frame_to_json(snapshot.draft_id, deltas),
        )

    async def snapshot(self, draft_id: str) -> LiveSnapshot | None:
        raw = await self.redis.get(self.snapshot_key(draft_id))
        return LiveSnapshot.from_json(raw) if raw else None

    async def watch(self, draft_id: str, handler: FrameHandler) -> None:
        async with self.lock:
            if not self.fan_out.add(draft_id, handler):
                return
            channel = self.channel(draft_id)
            confirmed = self.confirmed[channel] = asyncio.Event()
            await self.pubsub.subscribe(channel)
            if self.reader is None or self.reader.done():
                self.reader = asyncio.create_task(self._read(), name="live-hub-reader")
        # Until Redis confirms, a frame published now might not reach us.
        await asyncio.wait_for(confirmed.wait(), timeout=5)

    async def unwatch(self, draft_id: str, handler: FrameHandler) -> None:
        async with self.lock:
            if self.fan_out.remove(draft_id, handler):
                channel = self.channel(draft_id)
                self.confirmed.pop(channel, None)
                await self.pubsub.unsubscribe(channel)

    async def forget(self, draft_id: str) -> None:
        await self.redis.delete(self.snapshot_key(draft_id))

    async def _read(self) -> None:
        while True:
            if not self.pubsub.subscribed:
                await asyncio.sleep(0.05)
                continue
            try:
                message = await self.pubsub.get_message(ignore_subscribe_messages=False, timeout=1.0)
            except Exception:
                log.exception("live hub lost its Redis subscription; resubscribing")
                await asyncio.sleep(0.5)
                continue
            if message is None:
                continue
            if message["type"] == "subscribe":
                channel = message["channel"].decode()
                if channel in self.confirmed:
                    self.confirmed[channel].set()
            elif message["type"] == "message":
                draft_id, deltas = frame_from_json(message["data"])
                self.deliveries.put(draft_id, deltas)

    async def close(self) -> None:
        if self.reader is not None:
            self.reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.reader
        await self.deliveries.close()
        await self.outbox.close()
        await self.pubsub.aclose()
        await self.redis.aclose()


def read_snapshot(draft_id: str) -> LiveSnapshot | None:
    """The stored snapshot, for synchronous code (page views)."""
    raw = _snapshot_store_get(draft_id)
    return LiveSnapshot.from_json(raw) if raw else None


def mark_interrupted(snapshot: LiveSnapshot, reason: str) -> LiveSnapshot:
    """A run whose server went away: say so in the snapshot (synchronous, for page views)."""
    snapshot.state, snapshot.reason = RunState.INTERRUPTED, reason
    for section in snapshot.sections.values():
        if section.status in (SectionStatus.STREAMING, SectionStatus.NOT_STARTED):
            section.status, section.reason = SectionStatus.UNHEALTHY, reason
    _snapshot_store_set(snapshot)
    return snapshot


def _redis_prefix() -> str:
    from django.conf import settings

    prefix: str = settings.CACHES["default"].get("KEY_PREFIX", "lw")
    return prefix


def _snapshot_store_get(draft_id: str) -> str | bytes | None:
    from django.conf import settings

    if not settings.REDIS_URL:
        return _local_snapshots.get(draft_id)
    from django_redis import get_redis_connection

    raw: bytes | None = get_redis_connection("default").get(f"{_redis_prefix()}:live:snapshot:{draft_id}")
    return raw


def _snapshot_store_set(snapshot: LiveSnapshot) -> None:
    from django.conf import settings

    if not settings.REDIS_URL:
        _local_snapshots[snapshot.draft_id] = snapshot.to_json()
        return
    from django_redis import get_redis_connection

    key = f"{_redis_prefix()}:live:snapshot:{snapshot.draft_id}"
    get_redis_connection("default").set(key, snapshot.to_json(), ex=SNAPSHOT_TTL_SECONDS)


def forget_snapshot(draft_id: str) -> None:
    """Remove a draft's stored snapshot (synchronous, for code that deletes a draft for good)."""
    from django.conf import settings

    if not settings.REDIS_URL:
        _local_snapshots.pop(draft_id, None)
        return
    from django_redis import get_redis_connection

    get_redis_connection("default").delete(f"{_redis_prefix()}:live:snapshot:{draft_id}")


_hubs: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, LiveHub] = weakref.WeakKeyDictionary()


def hub() -> LiveHub:
    """This process's hub (Redis connections belong to one event loop, hence one per loop)."""
    loop = asyncio.get_running_loop()
    found = _hubs.get(loop)
    if found is None:
        from django.conf import settings

        found = RedisHub(settings.REDIS_URL, _redis_prefix()) if settings.REDIS_URL else LocalHub()
        _hubs[loop] = found
    return found


class LivePublisher:
    """The run's side: numbers deltas, keeps the snapshot, sends coalesced frames."""

    def __init__(
        self, live_hub: LiveHub, snapshot: LiveSnapshot, frame_seconds: float = FRAME_SECONDS
    ) -> None:
        self.hub = live_hub
        self.snapshot = snapshot
        self.frame_seconds = frame_seconds
        self.pending: list[Delta] = []
        self.last_flush = 0.0
        self.flusher: asyncio.Task[None] | None = None
        self.hurry = asyncio.Event()

    def emit(self, section: str, kind: str, **values: str) -> Delta:
        delta = Delta(seq=self.snapshot.seq + 1, section=section, kind=kind, **values)
        self.snapshot.apply(delta)
        self.pending.append(delta)
        if self.flusher is None or self.flusher.done():
            # Leading edge: a quiet book's first piece goes out at once, later ones wait for the frame.
            wait = self.last_flush + self.frame_seconds - time.monotonic()
            self.flusher = asyncio.create_task(self._flush_frames(wait))
        return delta

    async def _flush_frames(self, wait: float) -> None:
        while True:
            if wait > 0 and not self.hurry.is_set():
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.hurry.wait(), wait)
            await self.flush()
            if not self.pending:
                return
            wait = self.frame_seconds

    async def flush(self) -> None:
        if not self.pending:
            return
        deltas, self.pending = self.pending, []
        self.last_flush = time.monotonic()
        await self.hub.publish(self.snapshot, deltas)

    async def close(self) -> None:
        """Send whatever is pending now: a run's last frame is never held back."""
        self.hurry.set()
        if self.flusher is not None:
            await self.flusher
        await self.flush()


def snapshot_from_dict(data: dict[str, Any]) -> LiveSnapshot:
    return LiveSnapshot.from_json(json.dumps(data))
