"""The socket's end of the live tabs: one consumer per browser tab watching a book.

On connect it checks the session's user owns the draft, subscribes to the draft's
frames, reads the snapshot, sends it whole, and from then on only deltas newer than
what it has sent: a reload mid-stream shows everything so far and misses nothing.
What travels is HTML for htmx's WebSocket extension: out-of-band fragments rendered
from the same template partials as the page itself. Frames come straight from the hub
of this process (no channel-layer hop per frame: that path is the capacity limit).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from autobahn.exception import Disconnected
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer
from django.conf import settings
from django.template.loader import render_to_string
from django.utils import translation
from django.utils.translation import gettext as _
from django.utils.translation.trans_real import parse_accept_lang_header

from books import drafts
from books.domain import DomainError
from books.views import book_after_the_run
from littlewriter.request_threads import WORKER_THREADS
from streaming import live
from streaming.live import Delta, LiveSnapshot, RunState
from streaming.sections import BY_NAME

log = logging.getLogger(__name__)

CLOSE_NOT_SIGNED_IN = 4401
CLOSE_NOT_YOURS = 4404


class PageConsumer(AsyncWebsocketConsumer):
    # Frames come from the live hub of this process; a channel-layer inbox per socket would
    # only add a receive loop (a Redis one on channels-redis) that nothing ever sends to.
    channel_layer_alias = "live-hub-only"  # not in CHANNEL_LAYERS: Channels then gives no layer
    draft_id: str
    user_id: int
    book_language: str
    sent_seq: int
    shown: LiveSnapshot | None

    async def connect(self) -> None:
        user = self.scope.get("user")
        self.draft_id = self.scope["url_route"]["kwargs"]["draft_id"]
        self.watching = False
        if user is None or not user.is_authenticated:
            await self.close(code=CLOSE_NOT_SIGNED_IN)
            return
        book_language = await self._book_language(user.pk, self.draft_id)
        if book_language is None:
            await self.close(code=CLOSE_NOT_YOURS)
            return
        await self.accept()
        self.user_id = user.pk
        # Fragments are rendered in the page's interface language, chosen as LocaleMiddleware does.
        self.language = language_of(self.scope)
        # The story's own language, for its text's ``lang`` (a Korean book in an English page).
        self.book_language = book_language
        self.sent_seq, self.shown = -1, None
        # Frames and snapshots go out one at a time, in order, whoever triggers them.
        self.in_order = asyncio.Lock()
        self.hub = live.hub()
        await self.hub.watch(self.draft_id, self.take_frame)
        self.watching = True
        await self.resync()

    async def disconnect(self, code: int) -> None:
        if self.watching:
            self.watching = False
            await self.hub.unwatch(self.draft_id, self.take_frame)

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """The page says which frame the book it just swapped in was drawn at; nothing else is expected.

        A book drawn at another frame than this socket has sent (frames went to the part of the
        page that was replaced, or the book is newer than the frames still on their way) gets
        the snapshot again, so the page ends with every piece once. Anything else is answered
        with a notice, never a crash.
        """
        drawn_at = _drawn_at(text_data)
        if drawn_at is None:
            with translation.override(self.language):
                html = _render("notice", {"notice": _("This connection only shows the page being made.")})
            await self.send(text_data=html)
            return
        async with self.in_order:
            if drawn_at != self.sent_seq:
                await self._send_snapshot()

    async def take_frame(self, deltas: list[Delta]) -> None:
        """Called by the hub with every frame of this draft, in order."""
        async with self.in_order:
            if self.shown is None:
                await self._send_snapshot()  # the first run of this book began after we connected
                return
            newer = [d for d in deltas if d.seq > self.sent_seq]
            if not newer:
                return
            starts_run = any(d.kind == "run" and d.status == "running" for d in newer)
            if newer[0].seq != self.sent_seq + 1 or starts_run:
                # A gap (a frame this process never saw) or a new run: the snapshot is the truth.
                await self._send_snapshot()
                return
            for delta in newer:
                self.shown.apply(delta)
            self.sent_seq = newer[-1].seq
            with translation.override(self.language):
                html = render_deltas(self.shown, newer)
            await self._send(html)
            if any(d.kind == "run" and d.status != RunState.RUNNING for d in newer):
                await self._send_the_book()

    async def resync(self) -> None:
        async with self.in_order:
            await self._send_snapshot()

    async def _send_snapshot(self) -> None:
        snapshot = await self.hub.snapshot(self.draft_id)
        if snapshot is None:
            return
        self.shown = snapshot
        self.sent_seq = snapshot.seq
        with translation.override(self.language):
            html = _render("live", {"live": snapshot, "oob": True, "language": self.book_language})
        await self._send(html)

    async def _send_the_book(self) -> None:
        """The run has ended: the book with its new page, the next question and the child's box.

        Sent right after the run's last frame, in place of the fetch the browser made for it:
        one request a page less (Daphne, the middleware with the session and the user, then
        the view), measured in bench/README.md.
        """
        assert self.shown is not None
        try:
            async with WORKER_THREADS.lent():  # not the one thread every socket's calls share
                html = await self._book_html(self.shown)
        except DomainError:
            return  # the book is no longer in progress (finished or put away elsewhere)
        await self._send(html)

    @database_sync_to_async
    def _book_html(self, live: LiveSnapshot) -> str:
        with translation.override(self.language):
            return book_after_the_run(user_id=self.user_id, draft_id=self.draft_id, live=live)

    async def _send(self, html: str) -> None:
        try:
            await self.send(text_data=html)
        except Disconnected:
            # The tab closed between two frames; its disconnect (and unwatch) is on its way.
            # Not an error: tabs close all the time.
            log.debug("a frame for draft %s reached a closed socket", self.draft_id)

    @database_sync_to_async
    def _book_language(self, user_id: int, draft_id: str) -> str | None:
        """The draft's story language, or None when it is not this user's."""
        try:
            return drafts.load(user_id, draft_id).language.value
        except DomainError:
            return None


def _drawn_at(text_data: str | None) -> int | None:
    """The frame number in ``{"drawn_at": N, ...}`` (htmx's ws-send adds its headers), else None."""
    try:
        message = json.loads(text_data or "")
        drawn_at = message["drawn_at"]
    except (ValueError, TypeError, KeyError):
        return None
    if isinstance(drawn_at, bool) or not isinstance(drawn_at, int | str):
        return None
    try:
        return int(drawn_at)
    except ValueError:
        return None


def language_of(scope: dict[str, Any]) -> str:
    """The socket's interface language: the switcher's cookie, else the browser's Accept-Language."""
    cookie = scope.get("cookies", {}).get(settings.LANGUAGE_COOKIE_NAME, "")
    headers = dict(scope.get("headers", []))
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    for code in [cookie, *(code for code, _quality in parse_accept_lang_header(accept))]:
        if code and code != "*":
            try:
                return translation.get_supported_language_variant(code)
            except LookupError:
                continue
    return settings.LANGUAGE_CODE


def _render(partial: str, context: dict[str, Any]) -> str:
    return render_to_string(f"streaming/live.html#{partial}", context)


def render_deltas(snapshot: LiveSnapshot, deltas: list[Delta]) -> str:
    """One frame's HTML: text pieces appended, badges and pictures replaced, the run's state."""
    fragments: list[str] = []
    text: dict[str, list[str]] = {}
    for delta in deltas:
        if delta.kind == "text":
            text.setdefault(delta.section, []).append(delta.text)
            continue
        if delta.section in text:  # pieces before a status change go out before it
            fragments.append(_piece(delta.section, text.pop(delta.section)))
        fragments.append(_render_change(snapshot, delta))
    fragments.extend(_piece(name, pieces) for name, pieces in text.items())
    return "".join(fragments)


def _piece(name: str, pieces: list[str]) -> str:
    return _render("piece", {"name": name, "text": "".join(pieces)})


def _render_change(snapshot: LiveSnapshot, delta: Delta) -> str:
    context: dict[str, Any] = {"live": snapshot, "parts_oob": True}
    if delta.kind == "run":
        return _render("run", {**context, "just_now": True})
    section = BY_NAME[delta.section]
    context.update(section=section, state=snapshot.sections[delta.section])
    if delta.kind != "status":
        return _render("picture_body", context)
    if section.kind == "picture":
        # Its placeholder says whether it is being drawn: it changes with the badge.
        return _render("badges", context) + _render("picture_body", context)
    return _render("badges", context)
