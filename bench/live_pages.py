"""Live pages under load: N families press "make page" at once; how fast do their tabs fill?

Not a test: it prints figures. Three kinds of process, all on 127.0.0.1:

* an OpenAI-compatible **upstream** (asyncio, this file's ``_upstream`` role) with scripted
  latencies per section, which logs when it wrote each story's first chunk and every text
  it sent, per book;
* one **Daphne** server process, embedded (SQLite, database cache, in-process hub) or
  Redis-backed (MariaDB, Redis cache, Redis hub);
* the **clients** (this file's ``_clients`` role: asyncio, httpx2 and websockets): log in,
  start a book, open its socket, then POST "make page 1" for every book at once and record
  every frame with its arrival time.

The orchestrator (the default role) samples the server's CPU and peak RSS from /proc and
compares what the sockets assembled with what the upstream sent. See bench/README.md.

    .venv/bin/python bench/live_pages.py --quick
    .venv/bin/python bench/live_pages.py --books 1,50,200 --config embedded,redis
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import html
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / ".venv" / "bin"
PYTHON = str(BIN / "python")
SELF = str(Path(__file__).resolve())
HOST = "127.0.0.1"

# -- the scripted upstream (seconds) ---------------------------------------------------------------
STORY_FIRST_CHUNK = 0.2
STORY_TOTAL = 2.0
STORY_TOKENS_PER_SECOND = 50.0
STORY_CHUNKS = 1 + round((STORY_TOTAL - STORY_FIRST_CHUNK) * STORY_TOKENS_PER_SECOND)  # 91 words
PICTURE_SECONDS = 3.0
QUESTION_SECONDS = 0.8
QUESTION_CHUNKS = 10
WORDS_SECONDS = 0.6
WORDS_CHUNKS = 12
# The moderator's answer time. One across the internet answers slower than this;
# LW_BENCH_MODERATION_SECONDS=0.3 shows a page with a slower one (read by every process of
# the bench, the upstream's included).
MODERATION_SECONDS = float(os.environ.get("LW_BENCH_MODERATION_SECONDS", "0.05"))
# The child's idea is checked before the run starts; story and picture start together; question
# and new words start when the story is complete and checked whole, and are checked whole too.
SLOWEST_CHAIN = MODERATION_SECONDS + max(
    STORY_TOTAL + MODERATION_SECONDS + max(QUESTION_SECONDS, WORDS_SECONDS) + MODERATION_SECONDS,
    PICTURE_SECONDS,
)

# -- the run ------------------------------------------------------------------------------------------------
REDIS_URL = "redis://127.0.0.1:6379/10"
REDIS_PREFIX = "lw-bench"
MYSQL_DATABASE = "littlewriter_bench"
PASSWORD = "bench-password-4711"
SETUP_CONCURRENCY = 16
SETTLE_SECONDS = 1.0
COMPLETION_DEADLINE = SLOWEST_CHAIN + 60.0
# Steady arrivals: N books live at once means a page starts every chain / N seconds (Little's
# law). Three chains of arrivals: the first fills the server up, the middle one is measured
# (every one of its pages lives entirely while N are live), the last keeps it full meanwhile.
STEADY_ROUNDS = 3
ARRIVALS = ("steady", "burst")
TEXT_SECTIONS = ("story", "question", "new_words")
BOOK_TOKEN = re.compile(r"lwb-[0-9a-z]+-\d+")


def now() -> float:
    return time.time()


# ================================================================================================
# Upstream: an OpenAI-compatible server with scripted latencies (its own process)
# ================================================================================================

_VOCABULARY = (  # noqa: SIM905 - a sentence reads better than a list of words
    "the little fox hopped over a puddle and giggled while Mina held her red umbrella "
    "high above the sleepy orange cat who dreamed of fish and clouds and shiny stars "
    "then a gentle breeze carried a paper boat down the river past the old oak tree"
).split()
_SPECIAL = ["Mina's", "tea & cake", '"hello!"', "<giggle>", "café", "용감한", "it's", "a>b"]
_NEW_WORDS = [
    "puddle — a little pool of water on the ground after rain.",
    "breeze — a soft, gentle wind.",
    "umbrella — a cover you hold over your head to keep off the rain.",
    "sparkling — shining with lots of tiny flashes of light.",
]


def story_chunks(token: str) -> list[str]:
    """About 91 words, one per chunk, different for every book, with characters HTML escapes.

    Sentences of 6 to 12 words, as a picture book has: generated text is shown a sentence at
    a time, once the moderator has read it (``streaming/pipeline.py``).
    """
    rng = random.Random(token)
    words = [f"[{token}]"]
    sentence_end = rng.randint(6, 12)
    while len(words) < STORY_CHUNKS:
        word = rng.choice(_SPECIAL) if rng.random() < 0.08 else rng.choice(_VOCABULARY)
        if len(words) + 1 == sentence_end:
            word += "."
            sentence_end += rng.randint(6, 12)
        words.append(word)
    return [word + " " for word in words[:-1]] + [words[-1].rstrip(".") + "."]


# The end of a sentence as the pipeline releases text (``streaming/pipeline.py``, SENTENCE_END).
SENTENCE_CLOSE = re.compile(r"[.!?…]+[\"'”’)\]]*\s*$")


def sentence_closers(ends: list[int], text: str) -> list[int]:
    """For each chunk, the index of the chunk that ends its sentence (the earliest it may show)."""
    closers: list[int] = []
    waiting: list[int] = []
    for index, end in enumerate(ends):
        waiting.append(index)
        if SENTENCE_CLOSE.search(text[:end]) or index == len(ends) - 1:
            closers.extend([index] * len(waiting))
            waiting = []
    return closers


def question_chunks(token: str) -> list[str]:
    number = token.rsplit("-", 1)[-1]
    words = f"What do you think Mina & the fox find behind door number {number}?".split()
    chunks = [" ".join(words[: len(words) - QUESTION_CHUNKS + 1]) + " "]
    chunks += [word + " " for word in words[len(words) - QUESTION_CHUNKS + 1 : -1]] + [words[-1]]
    return chunks


def words_chunks(token: str) -> list[str]:
    rng = random.Random(token + "words")
    text = "\n".join(rng.sample(_NEW_WORDS, 3))
    pieces = re.findall(r"\s*\S+\s*", text)
    size = -(-len(pieces) // WORDS_CHUNKS)
    return ["".join(pieces[i : i + size]) for i in range(0, len(pieces), size)]


def tiny_png() -> bytes:
    width = height = 8
    raw = b"".join(b"\x00" + b"\xf2\xc0\x88" * width for _ in range(height))

    def chunk(tag: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def section_of(body: dict[str, Any]) -> str:
    """Which section a chat request is for, told by its system prompt (books/adapters/openai.py)."""
    system = " ".join(
        _message_text(m) for m in body.get("messages") or [] if m.get("role") in ("system", "developer")
    ).lower()
    if "new words" in system:
        return "new_words"
    if "question" in system:
        return "question"
    return "story"


class Upstream:
    def __init__(self, log_path: str) -> None:
        self.log = open(log_path, "a", buffering=1, encoding="utf-8")  # noqa: SIM115 - lives as long as the server
        self.png_b64 = base64.b64encode(tiny_png()).decode()

    def record(self, entry: dict[str, Any]) -> None:
        self.log.write(json.dumps(entry, ensure_ascii=False) + "\n")

    async def serve(self, port: int, lifetime: float) -> None:
        server = await asyncio.start_server(self.handle, HOST, port, backlog=1024)
        parent = os.getppid()
        deadline = now() + lifetime
        async with server:
            # Gone with its parent, or after ``lifetime``: it never outlives the bench.
            while now() < deadline and os.getppid() == parent:  # noqa: ASYNC110 - polls the parent
                await asyncio.sleep(0.5)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                request = await _read_request(reader)
                if request is None:
                    break
                path, headers, body = request
                received = now()
                if path.startswith("/v1/chat/completions"):
                    await self.chat(writer, json.loads(body or b"{}"), received)
                elif path.startswith("/v1/images/generations"):
                    await self.picture(writer, json.loads(body or b"{}"), received)
                elif path.startswith("/v1/moderations"):
                    await self.moderation(writer, json.loads(body or b"{}"), received)
                else:
                    _write_response(writer, 404, b'{"error": {"message": "no such route"}}')
                    await writer.drain()
                if headers.get("connection", "").lower() == "close":
                    break
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()

    async def moderation(self, writer: asyncio.StreamWriter, body: dict[str, Any], received: float) -> None:
        """Nothing is ever flagged: the bench measures the checks' cost, not their verdicts."""
        await _sleep_until(received + MODERATION_SECONDS)
        result = {"flagged": False, "categories": {}, "category_scores": {}}
        texts = body.get("input", "")
        count = len(texts) if isinstance(texts, list) else 1
        payload = {"id": "modr-bench", "model": body.get("model", "bench"), "results": [result] * count}
        # Timed before the answer is written: no text it clears can reach a socket sooner.
        answered = now()
        _write_response(writer, 200, json.dumps(payload).encode())
        await writer.drain()
        self.record(
            {
                "book": "",
                "section": "moderation",
                "answered": answered,
                "texts": texts if isinstance(texts, list) else [texts],
            }
        )

    async def picture(self, writer: asyncio.StreamWriter, body: dict[str, Any], received: float) -> None:
        match = BOOK_TOKEN.search(str(body.get("prompt", "")))
        await _sleep_until(received + PICTURE_SECONDS)
        payload = {"created": int(received), "data": [{"b64_json": self.png_b64}]}
        _write_response(writer, 200, json.dumps(payload).encode())
        await writer.drain()
        sent = now()
        self.record(
            {
                "book": match.group(0) if match else "",
                "section": "picture",
                "received": received,
                "done": sent,
                "late": sent - received - PICTURE_SECONDS,
            }
        )

    async def chat(self, writer: asyncio.StreamWriter, body: dict[str, Any], received: float) -> None:
        section = section_of(body)
        users = " ".join(_message_text(m) for m in body.get("messages") or [] if m.get("role") == "user")
        match = BOOK_TOKEN.search(users)
        token = match.group(0) if match else "lwb-unknown-0"
        if section == "story":
            chunks = story_chunks(token)
            schedule = [
                received + STORY_FIRST_CHUNK + i / STORY_TOKENS_PER_SECOND for i in range(len(chunks))
            ]
        elif section == "question":
            chunks = question_chunks(token)
            schedule = [received + (i + 1) * QUESTION_SECONDS / len(chunks) for i in range(len(chunks))]
        else:
            chunks = words_chunks(token)
            schedule = [received + (i + 1) * WORDS_SECONDS / len(chunks) for i in range(len(chunks))]
        model = json.dumps(str(body.get("model", "bench-model")))
        head = (
            f'{{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":{int(received)},'
            f'"model":{model},"choices":[{{"index":0,"delta":'
        )
        writer.write(
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
            + _sse(head + '{"role":"assistant","content":""},"finish_reason":null}]}')
        )
        first = late = 0.0
        written_at: list[float] = []
        for index, (piece, due) in enumerate(zip(chunks, schedule, strict=True)):
            await _sleep_until(due)
            writer.write(_sse(f'{head}{{"content":{json.dumps(piece)}}},"finish_reason":null}}]}}'))
            await writer.drain()
            written = now()
            written_at.append(round(written, 4))
            late = max(late, written - due)
            if index == 0:
                first = written
        writer.write(_sse(head + '{},"finish_reason":"stop"}]}') + _sse("[DONE]") + b"0\r\n\r\n")
        await writer.drain()
        self.record(
            {
                "book": token,
                "section": section,
                "received": received,
                "first": first,
                "first_late": first - schedule[0],
                "late": late,
                "done": now(),
                "text": "".join(chunks),
                "written": written_at,
                "ends": [len("".join(chunks[: i + 1])) for i in range(len(chunks))],
            }
        )


def _sse(data: str) -> bytes:
    event = b"data: " + data.encode() + b"\n\n"
    return b"%x\r\n%s\r\n" % (len(event), event)


def _write_response(writer: asyncio.StreamWriter, status: int, data: bytes) -> None:
    reason = {200: "OK", 404: "Not Found"}.get(status, "Error")
    writer.write(
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(data)}\r\n\r\n".encode()
        + data
    )


async def _sleep_until(moment: float) -> None:
    delay = moment - now()
    if delay > 0:
        await asyncio.sleep(delay)


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    parts = line.decode("latin-1").split()
    path = parts[1] if len(parts) > 1 else "/"
    headers: dict[str, str] = {}
    while True:
        header = await reader.readline()
        if header in (b"\r\n", b"\n", b""):
            break
        name, _, value = header.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while True:
            size = int((await reader.readline()).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            body += data[:-2]
    else:
        body = await reader.readexactly(int(headers.get("content-length") or 0))
    return path, headers, body


@contextlib.contextmanager
def scripted_upstream() -> Iterator[str]:
    """This upstream in a process of its own, for the other bench scripts; yields its base URL."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="lw-upstream-") as folder:
        upstream = subprocess.Popen(
            [PYTHON, SELF, "_upstream", "--port", str(port), "--log", f"{folder}/up.jsonl"]
        )
        try:
            wait_port(port, 20)
            yield f"http://{HOST}:{port}/v1"
        finally:
            stop_process(upstream, 10)


def upstream_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="live_pages.py _upstream")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--lifetime", type=float, default=3 * 3600)
    args = parser.parse_args(argv)
    asyncio.run(Upstream(args.log).serve(args.port, args.lifetime))


# ================================================================================================
# Seed: the users (Django ORM, same environment as the server)
# ================================================================================================


def seed_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="live_pages.py _seed")
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "littlewriter.settings")
    import django

    django.setup()
    from django.contrib.auth.hashers import make_password
    from django.contrib.auth.models import User
    from django.contrib.sessions.models import Session

    Session.objects.all().delete()  # the bench database only: yesterday's sessions are noise
    names = [f"bench{i:04d}" for i in range(args.count)]
    hashed = make_password(PASSWORD)
    existing = set(User.objects.filter(username__in=names).values_list("username", flat=True))
    User.objects.filter(username__in=existing).update(password=hashed)
    User.objects.bulk_create(User(username=name, password=hashed) for name in names if name not in existing)
    from families.models import Child

    users = dict(User.objects.filter(username__in=names).values_list("username", "pk"))
    have_child = set(Child.objects.filter(parent_id__in=users.values()).values_list("parent_id", flat=True))
    Child.objects.bulk_create(
        Child(parent_id=pk, nickname="Sunny", age_band="6-8") for pk in users.values() if pk not in have_child
    )
    children = dict(Child.objects.filter(parent_id__in=users.values()).values_list("parent_id", "pk"))
    print(json.dumps([[name, children[users[name]]] for name in names]))


# ================================================================================================
# Clients: browsers, one per book (their own process)
# ================================================================================================

RUN_STATE = re.compile(r'class="run-state is-(\w+)"')
DRAWN_AT = re.compile(r"""hx-vals='\{"drawn_at": (\d+)\}'""")
BOOK_SENT = re.compile(r'<div id="book" hx-swap-oob="true">')
HTMX = {"HX-Request": "true", "HX-Target": "book", "HX-Current-URL": "bench"}
DRAFT_URL = re.compile(r"/drafts/([0-9a-f]+)/")


@dataclass
class ClientBook:
    index: int
    username: str
    child: int
    token: str
    offset: float = 0.0
    """Seconds after the make phase starts at which this book presses "make page"."""
    measured: bool = True
    draft_id: str = ""
    post_status: int = 0
    post_sent: float = 0.0
    post_done: float = 0.0
    done_at: float = 0.0
    end_state: str = ""
    close_code: int | None = None
    errors: list[str] = field(default_factory=list)
    messages: list[tuple[float, str]] = field(default_factory=list)


async def clients_run(spec: dict[str, Any]) -> dict[str, Any]:
    import httpx2
    from websockets.asyncio.client import ClientConnection, connect
    from websockets.exceptions import ConnectionClosed, InvalidStatus
    from websockets.typing import Origin

    # With several server processes, a family's requests go to one and its socket to the
    # next, as a load balancer may send them: every frame then crosses processes through Redis.
    bases: list[str] = spec["base_urls"]

    def server_of(book: ClientBook) -> int:
        return -1 - book.index if book.index < 0 else book.index % len(bases)  # warm-ups: -1, -2, ...

    def socket_base(book: ClientBook) -> str:
        return bases[(server_of(book) + 1) % len(bases)]

    books = [
        ClientBook(
            index=i,
            username=name,
            child=child,
            token=f"lwb-{spec['run']}-{i}",
            offset=float(offset),
            measured=bool(measured),
        )
        for i, ((name, child), offset, measured) in enumerate(
            zip(spec["users"], spec["offsets"], spec["measured"], strict=True)
        )
    ]
    https: dict[int, httpx2.AsyncClient] = {}
    sockets: dict[int, ClientConnection] = {}
    http_errors: list[str] = []
    gate = asyncio.Semaphore(SETUP_CONCURRENCY)

    def csrf(client: httpx2.AsyncClient) -> str:
        return str(client.cookies.get("csrftoken") or "")

    def expect(book: ClientBook, what: str, response: Any, *statuses: int) -> bool:
        if response.status_code in statuses:
            return True
        book.errors.append(f"{what}: HTTP {response.status_code}")
        http_errors.append(f"{what} {response.status_code}")
        return False

    async def set_up(book: ClientBook) -> None:
        async with gate:
            client = https[book.index] = httpx2.AsyncClient(
                base_url=bases[server_of(book)], timeout=60.0, trust_env=False, follow_redirects=False
            )
            try:
                response = await client.get("/accounts/login/")
                if not expect(book, "login page", response, 200):
                    return
                response = await client.post(
                    "/accounts/login/",
                    data={
                        "username": book.username,
                        "password": PASSWORD,
                        "csrfmiddlewaretoken": csrf(client),
                    },
                )
                if not expect(book, "log in", response, 302):
                    return
                form = {
                    "csrfmiddlewaretoken": csrf(client),
                    "child": str(book.child),
                    "page_count": "4",
                    "language": "en",
                    "characters-TOTAL_FORMS": "1",
                    "characters-INITIAL_FORMS": "0",
                    "characters-MIN_NUM_FORMS": "0",
                    "characters-MAX_NUM_FORMS": "6",
                    "characters-0-name": "Mina",
                    "characters-0-description": f"a girl with a red umbrella ({book.token})",
                }
                response = await client.post("/new/", data=form)
                if not expect(book, "new book", response, 302):
                    return
                found = DRAFT_URL.search(response.headers.get("location", ""))
                if not found:
                    book.errors.append("new book: no draft in the redirect")
                    return
                book.draft_id = found.group(1)
                cookie = "; ".join(f"{name}={value}" for name, value in client.cookies.items())
                sockets[book.index] = await connect(
                    f"{socket_base(book).replace('http://', 'ws://')}/ws/drafts/{book.draft_id}/",
                    origin=Origin(socket_base(book)),
                    additional_headers={"Cookie": cookie},
                    open_timeout=30,
                    ping_interval=None,
                    max_size=None,
                    proxy=None,
                )
            except InvalidStatus as refused:
                book.errors.append(f"socket handshake: HTTP {refused.response.status_code}")
            except Exception as error:
                book.errors.append(f"set-up: {type(error).__name__}: {error}")

    async def listen(book: ClientBook) -> None:
        socket_ = sockets[book.index]
        try:
            async for message in socket_:
                arrived = now()
                text = message if isinstance(message, str) else message.decode()
                book.messages.append((arrived, text))
                state = RUN_STATE.search(text)
                if (
                    state
                    and state.group(1) != "running"
                    and 0 < book.post_sent <= arrived
                    and not book.done_at
                ):
                    book.done_at, book.end_state = arrived, state.group(1)
                if book.done_at and BOOK_SENT.search(text):
                    await swapped_in(book, text)  # the socket sends #book after the run's last frame
                    return
            book.errors.append("socket closed before the page was complete")
        except ConnectionClosed as closed:
            book.close_code = closed.rcvd.code if closed.rcvd else None
            book.errors.append(f"socket closed before the page was complete (code {book.close_code})")

    async def swapped_in(book: ClientBook, html: str) -> None:
        """htmx swapped #book in: its ws-send tells the socket which frame the book was drawn at."""
        found = DRAWN_AT.search(html)
        if found:
            await sockets[book.index].send(json.dumps({"drawn_at": int(found.group(1)), "HEADERS": HTMX}))

    async def make(book: ClientBook, start: float | None = None) -> None:
        client = https[book.index]
        if start is not None:
            await _sleep_until(start + book.offset)
        book.post_sent = now()
        try:
            # As htmx posts the form: the answer drops the form; the socket draws the tabs.
            response = await client.post(
                f"/drafts/{book.draft_id}/pages/1/make",
                data={"child_input": f"a dragon comes to tea ({book.token})"},
                headers={"X-CSRFToken": csrf(client), **HTMX},
            )
            book.post_done, book.post_status = now(), response.status_code
            if expect(book, "make page", response, 200):
                await swapped_in(book, response.text)
        except Exception as error:
            book.errors.append(f"make page: {type(error).__name__}: {error}")

    # One page first in each server process, not measured: the first page after a start
    # imports the OpenAI SDK and warms every pool; the first one's figures are reported
    # apart as the cold start.
    warm_ups = [
        ClientBook(index=-1 - k, username=name, child=child, token=f"lwb-{spec['run']}w-{k}")
        for k, (name, child) in enumerate(spec["warmup_users"])
    ]
    for warm in warm_ups:
        await set_up(warm)
        if warm.index in sockets:
            warm_listener = asyncio.create_task(listen(warm))
            await asyncio.sleep(SETTLE_SECONDS)
            await make(warm)
            done, _ = await asyncio.wait({warm_listener}, timeout=float(spec["deadline"]))
            if not done:
                warm.errors.append("the warm-up page did not complete")
                warm_listener.cancel()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sockets.pop(warm.index).close(), 5)
        with contextlib.suppress(Exception):
            await https.pop(warm.index).aclose()
        warm.messages = []
    warm = warm_ups[0]

    started = now()
    await asyncio.gather(*(set_up(book) for book in books))
    ready = [book for book in books if book.index in sockets]
    set_up_seconds = now() - started
    listeners = {asyncio.create_task(listen(book)): book for book in ready}
    await asyncio.sleep(SETTLE_SECONDS)  # the server subscribes each socket after accepting it

    profiled = int(spec.get("profile_pid") or 0)
    if profiled:
        os.kill(profiled, signal.SIGUSR1)
    spy = None
    if spec.get("py_spy"):
        # Samples only while holding the GIL: where the server's one core of Python goes.
        spy = await asyncio.create_subprocess_exec(
            *[
                spec["py_spy"],
                "record",
                "--pid",
                str(spec["server_pid"]),
                "--gil",
                "--threads",
                "--rate",
                "200",
                "--format",
                "raw",
                "--nonblocking",
                "--output",
                spec["py_spy_out"],
            ],
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
    make_started = now()
    await asyncio.gather(*(make(book, make_started) for book in ready))
    posted = now()
    pending: set[asyncio.Task[None]] = set()
    if listeners:
        _, pending = await asyncio.wait(listeners, timeout=float(spec["deadline"]))
    for task in pending:
        late = listeners[task]
        waited = f"within {spec['deadline']:.0f} s"
        late.errors.append(
            f"no book sent after the run {waited}" if late.done_at else f"no completion {waited}"
        )
        task.cancel()
    make_ended = now()
    if profiled:
        os.kill(profiled, signal.SIGUSR2)
    if spy is not None:
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 30)

    async def close(index: int) -> None:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(sockets[index].close(), 5)
        with contextlib.suppress(Exception):
            await https[index].aclose()

    await asyncio.gather(*(close(i) for i in sockets))
    for index, client in https.items():
        if index not in sockets:
            with contextlib.suppress(Exception):
                await client.aclose()
    return {
        "warmup": asdict(warm),
        "set_up_seconds": set_up_seconds,
        "make_started": make_started,
        "posts_sent_within": posted - make_started,
        "make_ended": make_ended,
        "http_errors": http_errors,
        "books": [asdict(book) for book in books],
    }


def clients_main(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(prog="live_pages.py _clients")
    parser.add_argument("--spec", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    spec = json.loads(Path(args.spec).read_text())
    result = asyncio.run(clients_run(spec))
    Path(args.out).write_text(json.dumps(result, ensure_ascii=False))


# ================================================================================================
# Profiled server (--profile): Daphne in-process, profiled between two signals
# ================================================================================================

_IDLE_LEAVES = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("queue.py", "get"),
    ("thread.py", "_worker"),
}


class StackSampler(threading.Thread):
    """Samples every thread's Python stack between SIGUSR1 and SIGUSR2 (a poor man's py-spy).

    The GIL switch interval is lowered so the sampler gets the GIL at arbitrary bytecodes,
    not only when the event loop blocks in a system call (which would bias every sample to
    ``send``/``epoll``). Time spent in C shows under the Python function that called it.
    """

    def __init__(self, out: str, interval: float = 0.003) -> None:
        super().__init__(daemon=True, name="bench-stack-sampler")
        self.out, self.interval = out, interval
        self.main = threading.main_thread().ident
        self.active = threading.Event()
        self.finishing = threading.Event()
        self.counts: dict[tuple[str, tuple[tuple[str, int, str], ...]], int] = {}
        self.started = 0.0

    def begin(self, *_: Any) -> None:
        self.counts, self.started = {}, now()
        sys.setswitchinterval(0.0002)
        self.active.set()

    def finish(self, *_: Any) -> None:
        self.finishing.set()

    def run(self) -> None:
        me = threading.get_ident()
        while True:
            if self.finishing.is_set():
                self.active.clear()
                self.finishing.clear()
                sys.setswitchinterval(0.005)
                self.report()
            if self.active.is_set():
                for ident, frame in sys._current_frames().items():
                    if ident == me:
                        continue
                    stack: list[tuple[str, int, str]] = []
                    walker: Any = frame
                    while walker is not None:
                        code = walker.f_code
                        stack.append((code.co_filename, code.co_firstlineno, code.co_name))
                        walker = walker.f_back
                    key = ("main" if ident == self.main else "worker", tuple(stack))
                    self.counts[key] = self.counts.get(key, 0) + 1
            time.sleep(self.interval)

    def report(self) -> None:
        lines = [f"stack samples every {1000 * self.interval:.0f} ms over {now() - self.started:.1f} s"]
        for kind in ("main", "worker"):
            stacks = {stack: n for (k, stack), n in self.counts.items() if k == kind}
            total = sum(stacks.values())
            busy = {
                stack: n
                for stack, n in stacks.items()
                if stack and (Path(stack[0][0]).name, stack[0][2]) not in _IDLE_LEAVES
            }
            busy_total = sum(busy.values())
            lines.append(
                f"\n== {kind} thread(s): {total} samples, {busy_total} busy"
                f" ({100 * busy_total / max(total, 1):.0f}%); shares below are of the busy samples"
            )
            own: dict[str, int] = {}
            inclusive: dict[str, int] = {}
            for stack, n in busy.items():
                leaf = f"{_short(stack[0][0])}:{stack[0][1]} {stack[0][2]}"
                own[leaf] = own.get(leaf, 0) + n
                for frame in {f"{_short(f)}:{line} {name}" for f, line, name in stack}:
                    inclusive[frame] = inclusive.get(frame, 0) + n
            lines.append("-- own time (innermost Python function) --")
            for name, n in sorted(own.items(), key=lambda item: -item[1])[:40]:
                lines.append(f"{100 * n / max(busy_total, 1):6.1f}%  {name}")
            lines.append("-- inclusive time --")
            for name, n in sorted(inclusive.items(), key=lambda item: -item[1])[:90]:
                lines.append(f"{100 * n / max(busy_total, 1):6.1f}%  {name}")
        Path(self.out).write_text("\n".join(lines) + "\n")


def _short(filename: str) -> str:
    for anchor in ("site-packages/", str(ROOT) + "/", "/lib/python3.12/"):
        if anchor in filename:
            return filename.split(anchor, 1)[1]
    return filename


def daphne_main(argv: Sequence[str]) -> None:
    """``_daphne OUT -- daphne arguments``: Daphne in this process, profiled on signal."""
    out, rest = argv[0], list(argv[list(argv).index("--") + 1 :])
    sampler = StackSampler(out)
    sampler.start()
    signal.signal(signal.SIGUSR1, sampler.begin)
    signal.signal(signal.SIGUSR2, sampler.finish)
    sys.argv = ["daphne", *rest]
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()


# ================================================================================================
# Orchestrator
# ================================================================================================

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
SNAPSHOT_TEXT = re.compile(r'id="section-(\w+)-text"[^>]*>(.*?)</div>', re.S)
PIECE = re.compile(r'<span hx-swap-oob="beforeend:#section-(\w+)-text">(.*?)</span>', re.S)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def cpu_seconds(pid: int) -> float | None:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every core spent busy since boot (``/proc/stat``), for the other processes' share."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[:8])
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class CpuSampler(threading.Thread):
    """CPU seconds of some processes, every 100 ms, with the wall-clock time of each sample."""

    def __init__(self, pids: dict[str, int | list[int]]) -> None:
        super().__init__(daemon=True, name="cpu-sampler")
        # A name may stand for several processes (the servers): their CPU is summed.
        self.pids = {name: pid if isinstance(pid, list) else [pid] for name, pid in pids.items()}
        self.samples: dict[str, list[tuple[float, float]]] = {name: [] for name in [*pids, "machine"]}
        self.stopping = threading.Event()

    def add(self, name: str, pid: int) -> None:
        self.samples.setdefault(name, [])
        self.pids[name] = [pid]

    def run(self) -> None:
        while not self.stopping.is_set():
            for name, pids in list(self.pids.items()):
                readings = [cpu_seconds(pid) for pid in pids]
                if all(seconds is not None for seconds in readings):
                    self.samples[name].append((now(), sum(s for s in readings if s is not None)))
            self.samples["machine"].append((now(), machine_busy_seconds()))
            self.stopping.wait(0.1)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=2)

    def usage(self, name: str, start: float, end: float) -> tuple[float, float]:
        """(mean %, busiest one-second %) of one core over [start, end]."""
        samples = [s for s in self.samples.get(name, []) if start - 0.15 <= s[0] <= end + 0.15]
        if len(samples) < 2:
            return 0.0, 0.0
        mean = (samples[-1][1] - samples[0][1]) / max(samples[-1][0] - samples[0][0], 1e-9)
        peak, j = 0.0, 0
        for i in range(len(samples)):
            while j < len(samples) and samples[j][0] - samples[i][0] < 1.0:
                j += 1
            if j == len(samples):
                break
            peak = max(peak, (samples[j][1] - samples[i][1]) / (samples[j][0] - samples[i][0]))
        return 100 * mean, 100 * max(peak, mean)


class RedisBacklog(threading.Thread):
    """Bytes Redis already sent the server that the server has not read yet (kernel receive queue).

    The largest receive queue among the server's sockets to Redis: with pub/sub that is
    frames waiting for the process's one subscription reader.
    """

    def __init__(self, pids: list[int]) -> None:
        super().__init__(daemon=True, name="redis-backlog")
        self.pids = pids
        self.stopping = threading.Event()
        self.peak_bytes = 0

    def inodes(self) -> set[str]:
        found = set()
        for pid in self.pids:
            with contextlib.suppress(OSError):
                for fd in os.listdir(f"/proc/{pid}/fd"):
                    with contextlib.suppress(OSError):
                        target = os.readlink(f"/proc/{pid}/fd/{fd}")
                        if target.startswith("socket:["):
                            found.add(target[8:-1])
        return found

    def run(self) -> None:
        while not self.stopping.is_set():
            inodes = self.inodes()
            with contextlib.suppress(OSError):
                for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
                    fields = line.split()
                    if fields[2].endswith(":18EB") and fields[9] in inodes:  # remote port 6379
                        self.peak_bytes = max(self.peak_bytes, int(fields[4].split(":")[1], 16))
            self.stopping.wait(0.05)

    def stop(self) -> None:
        self.stopping.set()
        self.join(timeout=2)


def run_quietly(command: list[str], env: dict[str, str], timeout: float, what: str) -> str:
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(
            f"{what} failed ({done.returncode}):\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
        )
    return done.stdout


def wait_answering(url: str, process: subprocess.Popen[bytes], seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server at {url} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except urllib.error.HTTPError:
            return  # it answers
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {seconds:.0f} s")


def wait_port(port: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1):
            return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {HOST}:{port} after {seconds:.0f} s")


def stop_process(process: subprocess.Popen[bytes], seconds: float = 15) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def environment_without_the_apps() -> dict[str, str]:
    """This process's environment without any variable the app reads: the bench sets its own."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "LW_", "REDIS_", "DATABASE_", "S3_", "OPENAI_"))
    }


def server_env(config: str, var_dir: Path, upstream_url: str) -> dict[str, str]:
    env = environment_without_the_apps()
    env.update(
        DJANGO_SETTINGS_MODULE="littlewriter.settings",
        PYTHONPATH=str(ROOT),
        LW_VAR_DIR=str(var_dir),
        OPENAI_API_KEY="bench",
        OPENAI_BASE_URL=upstream_url,
        LW_STORYTELLER="openai",
        LW_OPENAI_MAX_RETRIES="0",
        # As in production: DEBUG keeps every SQL query in memory, wraps every cursor and
        # template node for its error pages and serves static files through Django.
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="bench-only-secret-key-not-for-production",
        LW_FAST_PASSWORD_HASHER="1",
        NO_PROXY="127.0.0.1,localhost",
    )
    if config == "redis":
        env.update(
            REDIS_URL=REDIS_URL,
            LW_CACHE_PREFIX=REDIS_PREFIX,
            DATABASE_URL=f"mysql://root@127.0.0.1:3306/{MYSQL_DATABASE}",
        )
    return env


def prepare_mysql(env: dict[str, str], connections: int) -> None:
    """Create the bench database afresh and migrate it; raise MariaDB's connection limit if asked to.

    Afresh: every run adds users, sessions, books and usage rows, and a database that grew
    over a day of runs is one more difference between figures meant to be compared.
    """
    import MySQLdb

    connection = MySQLdb.connect(host=HOST, port=3306, user="root")
    try:
        cursor = connection.cursor()
        cursor.execute(f"DROP DATABASE IF EXISTS {MYSQL_DATABASE}")
        cursor.execute(f"CREATE DATABASE {MYSQL_DATABASE} CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        cursor.execute("SELECT @@max_connections")
        (limit,) = cursor.fetchone()
        if connections > int(limit):
            # A global server setting, until MariaDB restarts: the bench says so loudly.
            cursor.execute(f"SET GLOBAL max_connections = {int(connections)}")
            print(f"MariaDB max_connections raised from {limit} to {connections} (--mysql-connections)")
        else:
            print(f"MariaDB max_connections is {limit}")
    finally:
        connection.close()
    run_quietly([PYTHON, "manage.py", "migrate", "--noinput"], env, 600, "migrate (MariaDB)")


def listen_overflows() -> int:
    """The kernel's count of connections dropped because a listener's accept queue was full.

    Machine-wide (``TcpExtListenOverflows``): during a run the listeners are Daphne and the
    upstream, and the clients connect only to Daphne in numbers.
    """
    lines = Path("/proc/net/netstat").read_text().splitlines()
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            return int(dict(zip(names.split(), values.split(), strict=True)).get("ListenOverflows", 0))
    return 0


def mysql_connections_peak(reset: bool = False) -> int:
    """MariaDB's ``Max_used_connections``: the most connections at once since ``reset``.

    Server-wide, so it counts every client of the machine's MariaDB (the bench's own one
    included); the bench runs nothing else against it while a server is up.
    """
    import MySQLdb

    connection = MySQLdb.connect(host=HOST, port=3306, user="root")
    try:
        cursor = connection.cursor()
        if reset:
            cursor.execute("FLUSH STATUS")  # the peak starts again from the connections open now
        cursor.execute("SHOW GLOBAL STATUS LIKE 'Max_used_connections'")
        (_name, value) = cursor.fetchone()
        return int(value)
    finally:
        connection.close()


def forget_redis_keys() -> int:
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(f"{REDIS_PREFIX}*", count=1000))
        for start in range(0, len(keys), 500):
            client.delete(*keys[start : start + 500])
        return len(keys)
    finally:
        client.close()


def percentile(values: list[float], share: float) -> float:
    """Nearest rank; nan when there is nothing."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-share * len(ordered) // 1))))
    return ordered[rank - 1]


@dataclass
class BookFigures:
    completion_over_chain: float | None = None
    first_delta_lag: float | None = None
    post_seconds: float | None = None
    frames: int = 0
    snapshots: int = 0
    mismatches: dict[str, str] = field(default_factory=dict)
    texts_checked: int = 0
    piece_delays: list[float] = field(default_factory=list)
    sentence_delays: list[float] = field(default_factory=list)
    first_after_check: float | None = None
    shown_unchecked: int = 0
    errors: list[str] = field(default_factory=list)


def assemble(
    messages: list[tuple[float, str]],
) -> tuple[dict[str, str], float | None, int, list[tuple[float, int]]]:
    """What a browser shows per text section: the last snapshot's text plus every piece after it.

    Also the story's length after every message, to time each piece against the upstream.
    """
    texts = dict.fromkeys(TEXT_SECTIONS, "")
    first_story: float | None = None
    snapshots = 0
    story_lengths: list[tuple[float, int]] = []
    for arrived, message in messages:
        if '<section id="live"' in message:
            if not BOOK_SENT.search(message):  # the book sent after a run draws #live too
                snapshots += 1
            for name, text in SNAPSHOT_TEXT.findall(message):
                texts[name] = html.unescape(text)
        for name, text in PIECE.findall(message):
            texts[name] = texts.get(name, "") + html.unescape(text)
        if first_story is None and texts["story"]:
            first_story = arrived
        story_lengths.append((arrived, len(texts["story"])))
    return texts, first_story, snapshots, story_lengths


def piece_delays(
    story_lengths: list[tuple[float, int]], sent: dict[str, Any]
) -> tuple[list[float], list[float]]:
    """For every upstream story chunk, when the socket had it minus when the upstream wrote it,
    and minus when the upstream wrote the end of its sentence (the moderator's wait excluded)."""
    delays: list[float] = []
    after_sentence: list[float] = []
    index = 0
    ends, written = sent.get("ends", []), sent.get("written", [])
    closers = sentence_closers(ends, sent.get("text", ""))
    for arrived, length in story_lengths:
        while index < len(ends) and ends[index] <= length:
            delays.append(arrived - written[index])
            after_sentence.append(arrived - written[closers[index]])
            index += 1
    return delays, after_sentence


def after_checks(
    story_lengths: list[tuple[float, int]], checks: list[tuple[float, int]]
) -> tuple[float | None, int]:
    """When the first story text reached the socket minus when the moderator answered the check
    that cleared it (the server's own share of the first delta), and how many messages showed
    story text no answer had cleared by then (any at all is a safety fault).

    ``checks``: (when the moderator answered, how many of the story's first characters it read),
    in the order answered.
    """
    first: float | None = None
    unchecked = 0
    cleared, index = 0, 0
    for arrived, length in story_lengths:
        if not length:
            continue
        while index < len(checks) and checks[index][0] <= arrived:
            cleared = max(cleared, checks[index][1])
            index += 1
        if first is None:
            answers = [answered for answered, read in checks if read >= length]
            first = arrived - min(answers) if answers else None
        if length > cleared:
            unchecked += 1
    return first, unchecked


def describe_mismatch(seen: str, sent: str) -> str:
    if len(seen) > len(sent):
        return f"duplicated ({len(seen) - len(sent)} characters too many)"
    if len(seen) < len(sent):
        return f"lost ({len(sent) - len(seen)} characters missing)"
    return "garbled (same length, different text)"


def analyse(
    config: str,
    arrival: str,
    books_wanted: int,
    clients: dict[str, Any],
    upstream: dict[tuple[str, str], dict[str, Any]],
    story_checks: dict[str, list[tuple[float, int]]],
    sampler: CpuSampler,
    rss_mb: float,
    server_log: str,
) -> dict[str, Any]:
    # Every book is checked for lost or repeated text and for errors; the timings, CPU and frame
    # rates are those of the measured books (all of them in a burst, the middle round when steady).
    every: list[BookFigures] = []
    figures: list[BookFigures] = []
    measured_books: list[dict[str, Any]] = []
    arrivals: list[float] = []
    starts: list[float] = []
    ends: list[float] = []
    for book in clients["books"]:
        figure = BookFigures(errors=list(book["errors"]))
        every.append(figure)
        if book.get("measured", True):
            figures.append(figure)
            measured_books.append(book)
        if not book["post_sent"]:
            continue
        messages = [(float(t), str(m)) for t, m in book["messages"] if t >= book["post_sent"]]
        arrivals.extend(t for t, _ in messages)
        # A book that never completes ends with its last frame (or its POST), not at the deadline.
        book["end"] = book["done_at"] or max([book["post_done"], *(t for t, _ in messages)])
        if book.get("measured", True):
            starts.append(book["post_sent"])
            ends.append(book["end"])
        figure.frames = len(messages)
        if book["post_done"]:
            figure.post_seconds = book["post_done"] - book["post_sent"]
        texts, first_story, figure.snapshots, story_lengths = assemble(messages)
        if book["end_state"] == "complete":
            figure.completion_over_chain = book["done_at"] - book["post_sent"] - SLOWEST_CHAIN
        elif book["end_state"]:
            figure.errors.append(f"the run ended {book['end_state']}")
        story = upstream.get((book["token"], "story"))
        if story and first_story is not None:
            figure.first_delta_lag = first_story - story["first"]
        if story:
            figure.piece_delays, figure.sentence_delays = piece_delays(story_lengths, story)
        if story_checks:
            figure.first_after_check, figure.shown_unchecked = after_checks(
                story_lengths, story_checks.get(book["token"], [])
            )
        if book["end_state"] != "complete":
            continue  # a run that stopped or failed never read all the upstream sent: not a loss
        for name in TEXT_SECTIONS:
            sent = upstream.get((book["token"], name))
            if sent is None:
                figure.mismatches[name] = "the upstream never got this request"
                continue
            figure.texts_checked += 1
            if texts.get(name, "") != sent["text"]:
                figure.mismatches[name] = describe_mismatch(texts.get(name, ""), sent["text"])
    start = min(starts) if starts else clients["make_started"]
    end = max(ends) if ends else clients["make_ended"]
    window = max(end - start, 1e-9)
    frames_total = sum(1 for t in arrivals if start <= t <= end)
    server_cpu, server_peak = sampler.usage("server", start, end)
    # The server's CPU per page over the whole make phase, every book's page counted: what a
    # page costs, whether or not the process was saturated.
    phase_cpu, _ = sampler.usage("server", clients["make_started"], clients["make_ended"])
    pages_made = sum(1 for book in clients["books"] if book["end_state"] == "complete")
    cpu_per_page = (
        10 * phase_cpu * (clients["make_ended"] - clients["make_started"]) / pages_made
        if pages_made
        else float("nan")
    )
    upstream_cpu, _ = sampler.usage("upstream", start, end)
    clients_cpu, _ = sampler.usage("clients", start, end)
    machine_cpu, _ = sampler.usage("machine", start, end)
    completions = [f.completion_over_chain for f in figures if f.completion_over_chain is not None]
    lags = [f.first_delta_lag for f in figures if f.first_delta_lag is not None]
    posts = [f.post_seconds for f in figures if f.post_seconds is not None]
    pieces = [delay for f in figures for delay in f.piece_delays]
    after_sentences = [delay for f in figures for delay in f.sentence_delays]
    first_sentences = [f.sentence_delays[0] for f in figures if f.sentence_delays]
    after_check = [f.first_after_check for f in figures if f.first_after_check is not None]
    books_upstream = [v for (token, _), v in upstream.items()]
    late = [v.get("first_late", v.get("late", 0.0)) for v in books_upstream if v["section"] == "story"]
    pictures_late = [v["late"] for v in books_upstream if v["section"] == "picture"]
    per_book_rates = [
        f.frames / max(book["end"] - book["post_sent"], 1e-9)
        for f, book in zip(figures, measured_books, strict=True)
        if book["post_sent"]
    ]
    warm = clients["warmup"]
    cold_post = 1000 * (warm["post_done"] - warm["post_sent"]) if warm["post_done"] else float("nan")
    cold_completion = (
        1000 * (warm["done_at"] - warm["post_sent"] - SLOWEST_CHAIN)
        if warm["end_state"] == "complete"
        else float("nan")
    )
    return {
        "config": config,
        "arrival": arrival,
        "books": books_wanted,
        "cold_post_ms": cold_post,
        "cold_completion_ms": cold_completion,
        "warmup_errors": warm["errors"]
        + ([f"ended {warm['end_state']}"] if warm["end_state"] not in ("", "complete") else []),
        "completed": len(completions),
        "completion_p50_ms": 1000 * percentile(completions, 0.5),
        "completion_p99_ms": 1000 * percentile(completions, 0.99),
        "completion_max_ms": 1000 * max(completions, default=float("nan")),
        "first_delta_p50_ms": 1000 * percentile(lags, 0.5),
        "first_delta_p99_ms": 1000 * percentile(lags, 0.99),
        "first_delta_max_ms": 1000 * max(lags, default=float("nan")),
        "first_sentence_p50_ms": 1000 * percentile(first_sentences, 0.5),
        "first_sentence_p99_ms": 1000 * percentile(first_sentences, 0.99),
        "first_after_check_p50_ms": 1000 * percentile(after_check, 0.5),
        "first_after_check_p99_ms": 1000 * percentile(after_check, 0.99),
        "first_after_check_max_ms": 1000 * max(after_check, default=float("nan")),
        "shown_unchecked": sum(f.shown_unchecked for f in every) if story_checks else None,
        "sentence_p50_ms": 1000 * percentile(after_sentences, 0.5),
        "sentence_p99_ms": 1000 * percentile(after_sentences, 0.99),
        "piece_p50_ms": 1000 * percentile(pieces, 0.5),
        "piece_p99_ms": 1000 * percentile(pieces, 0.99),
        "post_p50_ms": 1000 * percentile(posts, 0.5),
        "post_p99_ms": 1000 * percentile(posts, 0.99),
        "frames_per_second": frames_total / window,
        "frames_per_book_second": sum(per_book_rates) / max(len(per_book_rates), 1),
        "server_cpu_pct": server_cpu,
        "server_cpu_peak_pct": server_peak,
        "server_cpu_ms_per_page": cpu_per_page,
        "upstream_cpu_pct": upstream_cpu,
        "clients_cpu_pct": clients_cpu,
        "others_cpu_pct": max(machine_cpu - server_cpu - upstream_cpu - clients_cpu, 0.0),
        "peak_rss_mb": rss_mb,
        "lost_or_duplicated": sum(1 for f in every if f.mismatches),
        "books_checked": sum(1 for f in every if f.texts_checked == len(TEXT_SECTIONS)),
        "books_started": len(every),
        "mismatches": {f"book {i}": f.mismatches for i, f in enumerate(every) if f.mismatches},
        "resyncs": sum(max(f.snapshots - 1, 0) for f in every),
        "errors": sum(len(f.errors) for f in every),
        "error_samples": sorted({e for f in every for e in f.errors})[:10],
        "upstream_first_chunk_late_max_ms": 1000 * max(late, default=0.0),
        "upstream_picture_late_max_ms": 1000 * max(pictures_late, default=0.0),
        "set_up_seconds": clients["set_up_seconds"],
        "posts_sent_within_ms": 1000 * clients["posts_sent_within"],
        "make_window_seconds": window,
        "server_log_tracebacks": server_log.count("Traceback"),
        "server_log_500s": server_log.count("Internal Server Error"),
    }


def read_upstream_log(path: Path, run: str) -> dict[tuple[str, str], dict[str, Any]]:
    found: dict[tuple[str, str], dict[str, Any]] = {}
    prefix = f"lwb-{run}-"
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as log:
        for line in log:
            entry = json.loads(line)
            if entry["book"].startswith(prefix):
                found[(entry["book"], entry["section"])] = entry
    return found


def read_story_checks(path: Path, stories: dict[str, str]) -> dict[str, list[tuple[float, int]]]:
    """Each book's moderator answers that read a beginning of its story (a check reads the text so
    far): when answered and how many characters, in the order answered. Empty with no moderator."""
    key = 12  # a first sentence is six words or more
    by_start: dict[str, list[str]] = {}
    for token, text in stories.items():
        by_start.setdefault(text[:key], []).append(token)
    found: dict[str, list[tuple[float, int]]] = {}
    with contextlib.suppress(FileNotFoundError), path.open(encoding="utf-8") as log:
        for line in log:
            if '"moderation"' not in line:
                continue
            entry = json.loads(line)
            for text in entry["texts"]:
                for token in by_start.get(str(text)[:key], ()):
                    if stories[token].startswith(text):
                        found.setdefault(token, []).append((entry["answered"], len(text)))
    return {token: sorted(checks) for token, checks in found.items()}


def arrival_plan(arrival: str, books: int) -> tuple[list[float], list[bool]]:
    """When each book presses "make page" (seconds into the make phase) and whether it is measured.

    ``burst``: all ``books`` at the same moment, all measured. ``steady``: ``books`` live at
    once, a page starting every chain / books seconds for three chains, the middle one measured.
    """
    if arrival == "burst" or books == 1:
        return [0.0] * books, [True] * books
    gap = SLOWEST_CHAIN / books
    total = books * STEADY_ROUNDS
    offsets = [i * gap for i in range(total)]
    measured = [books <= i < 2 * books for i in range(total)]
    return offsets, measured


def run_once(
    config: str,
    books: int,
    workdir: Path,
    upstream_url: str,
    upstream_pid: int,
    upstream_log: Path,
    profile: bool = False,
    arrival: str = "steady",
    py_spy: str = "",
    accept_queue: int = 1024,
    processes: int = 1,
) -> dict[str, Any]:
    run = f"{config[0]}{books}{arrival[0]}x{secrets.token_hex(3)}"
    offsets, measured = arrival_plan(arrival, books)
    run_dir = workdir / run
    run_dir.mkdir(parents=True)
    var_dir = run_dir / "var"
    var_dir.mkdir()
    env = server_env(config, var_dir, upstream_url)
    if config == "embedded":
        run_quietly([PYTHON, "manage.py", "migrate", "--noinput"], env, 600, "migrate (SQLite)")
        run_quietly([PYTHON, "manage.py", "createcachetable"], env, 120, "createcachetable")
    else:
        forget_redis_keys()
    users = json.loads(
        run_quietly([PYTHON, SELF, "_seed", "--count", str(len(offsets) + processes)], env, 600, "seed")
    )
    if config == "redis":
        mysql_connections_peak(reset=True)

    servers: list[subprocess.Popen[bytes]] = []
    base_urls: list[str] = []
    server_logs = [run_dir / ("daphne.log" if k == 0 else f"daphne-{k}.log") for k in range(processes)]
    for server_log_path in server_logs:
        port = free_port()
        base_urls.append(f"http://{HOST}:{port}")
        with server_log_path.open("wb") as server_log:
            # As scripts/serve starts it: the accept queue set through a Twisted endpoint string.
            endpoint = f"tcp:port={port}:interface={HOST}:backlog={accept_queue}"
            daphne = ["-e", endpoint, "littlewriter.asgi:application"]
            command = [str(BIN / "daphne"), *daphne]
            if profile:
                command = [PYTHON, SELF, "_daphne", str(run_dir / "profile.txt"), "--", *daphne]
            servers.append(
                subprocess.Popen(command, cwd=ROOT, env=env, stdout=server_log, stderr=subprocess.STDOUT)
            )
    server = servers[0]
    sampler = CpuSampler({"server": [s.pid for s in servers], "upstream": upstream_pid})
    backlog = RedisBacklog([s.pid for s in servers])
    rss = 0.0
    database_peak = 0
    overflows = 0
    try:
        for base_url, each in zip(base_urls, servers, strict=True):
            wait_answering(base_url + "/", each, 60)
        sampler.start()
        if config == "redis":
            backlog.start()
        spec = {
            "base_urls": base_urls,
            "users": users[processes:],
            "warmup_users": users[:processes],
            "run": run,
            "deadline": COMPLETION_DEADLINE + max(offsets),
            "profile_pid": server.pid if profile else 0,
            "server_pid": server.pid,
            "py_spy": py_spy,
            "py_spy_out": str(run_dir / "py-spy.txt"),
            "offsets": offsets,
            "measured": measured,
        }
        overflows_before = listen_overflows()
        spec_path, out_path = run_dir / "spec.json", run_dir / "clients.json"
        spec_path.write_text(json.dumps(spec))
        clients_log = (run_dir / "clients.log").open("wb")
        client_process = subprocess.Popen(
            [PYTHON, SELF, "_clients", "--spec", str(spec_path), "--out", str(out_path)],
            cwd=ROOT,
            env={**os.environ, "NO_PROXY": "127.0.0.1,localhost"},
            stdout=clients_log,
            stderr=subprocess.STDOUT,
        )
        sampler.add("clients", client_process.pid)
        try:
            client_process.wait(timeout=600 + len(offsets) * 2 + COMPLETION_DEADLINE + max(offsets))
        except subprocess.TimeoutExpired:
            client_process.kill()
            client_process.wait(timeout=10)
        finally:
            clients_log.close()
        if client_process.returncode != 0:
            raise RuntimeError(
                f"the clients failed ({client_process.returncode}); see {run_dir / 'clients.log'}:\n"
                + (run_dir / "clients.log").read_text(errors="replace")[-3000:]
            )
        overflows = listen_overflows() - overflows_before
        time.sleep(0.3 if not profile else 3.0)  # the upstream's log line, the profile report
        rss = max(peak_rss_mb(each.pid) for each in servers)
        if config == "redis":
            database_peak = mysql_connections_peak()
    finally:
        sampler.stop()
        if backlog.is_alive():
            backlog.stop()
        for each in servers:
            stop_process(each)
    clients = json.loads(out_path.read_text())
    sent = read_upstream_log(upstream_log, run)
    stories = {token: entry["text"] for (token, section), entry in sent.items() if section == "story"}
    figures = analyse(
        config,
        arrival,
        books,
        clients,
        sent,
        read_story_checks(upstream_log, stories),
        sampler,
        rss,
        "".join(path.read_text(errors="replace") for path in server_logs),
    )
    figures["redis_unread_kb"] = backlog.peak_bytes / 1024
    figures["database_connections_peak"] = database_peak
    figures["listen_overflows"] = overflows
    figures["processes"] = processes
    figures["run_dir"] = str(run_dir)
    if profile:
        figures["profile"] = str(run_dir / "profile.txt")
    if py_spy:
        figures["profile"] = str(run_dir / "py-spy.txt")
    return figures


COLUMNS = [
    ("books", "books", "{:d}"),
    ("done", "completed", "{:d}"),
    ("compl-chain p50", "completion_p50_ms", "{:.0f}"),
    ("p99 ms", "completion_p99_ms", "{:.0f}"),
    ("1st-delta p50", "first_delta_p50_ms", "{:.1f}"),
    ("p99 ms", "first_delta_p99_ms", "{:.1f}"),
    ("1st-sent p50", "first_sentence_p50_ms", "{:.1f}"),
    ("p99 ms", "first_sentence_p99_ms", "{:.1f}"),
    ("after-check p50", "first_after_check_p50_ms", "{:.1f}"),
    ("p99 ms", "first_after_check_p99_ms", "{:.1f}"),
    ("unchecked", "shown_unchecked", "{:d}"),
    ("sent p50", "sentence_p50_ms", "{:.0f}"),
    ("p99 ms", "sentence_p99_ms", "{:.0f}"),
    ("piece p50", "piece_p50_ms", "{:.0f}"),
    ("p99 ms", "piece_p99_ms", "{:.0f}"),
    ("POST p99 ms", "post_p99_ms", "{:.0f}"),
    ("frames/s", "frames_per_second", "{:.0f}"),
    ("/book", "frames_per_book_second", "{:.1f}"),
    ("cpu %", "server_cpu_pct", "{:.0f}"),
    ("peak %", "server_cpu_peak_pct", "{:.0f}"),
    ("ms/page", "server_cpu_ms_per_page", "{:.1f}"),
    ("rss MB", "peak_rss_mb", "{:.0f}"),
    ("db conns", "database_connections_peak", "{:d}"),
    ("listen ovf", "listen_overflows", "{:d}"),
    ("lost/dup of", "", ""),
    ("resync", "resyncs", "{:d}"),
    ("errors", "errors", "{:d}"),
    ("up-late ms", "upstream_first_chunk_late_max_ms", "{:.0f}"),
    ("up/cl/other cpu %", "", ""),
    ("cold POST/compl ms", "", ""),
    ("probe s", "probe_s", "{}"),
]


def format_row(row: dict[str, Any]) -> list[str]:
    cells = []
    for name, key, pattern in COLUMNS:
        if name.startswith("up/cl"):
            cells.append(
                f"{row['upstream_cpu_pct']:.0f}/{row['clients_cpu_pct']:.0f}/{row['others_cpu_pct']:.0f}"
            )
        elif name.startswith("lost"):
            cells.append(f"{row['lost_or_duplicated']}/{row['books_checked']}")
        elif name.startswith("cold"):
            cells.append(f"{row['cold_post_ms']:.0f}/{row['cold_completion_ms']:.0f}")
        elif key == "database_connections_peak" and not row.get(key):
            cells.append("-")  # SQLite: no connections to count
        elif row.get(key, 0) is None:
            cells.append("-")  # e.g. no moderator asked: no checks to time
        else:
            cells.append(pattern.format(row[key]))
    return cells


def print_table(config: str, rows: list[dict[str, Any]]) -> None:
    headers = [name for name, _, _ in COLUMNS]
    body = [format_row(row) for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in body)) for i, h in enumerate(headers)]
    steady = "steady" in config
    print(
        f"\n{config}  (slowest chain {1000 * SLOWEST_CHAIN:.0f} ms;"
        " completion is minus the chain, first delta minus the upstream's first chunk,"
        " after-check minus the moderator's answer that cleared it"
        + ("; books = live at once, the middle of three rounds measured)" if steady else ")")
    )
    print("  ".join(h.rjust(w) for h, w in zip(headers, widths, strict=True)))
    for cells in body:
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths, strict=True)))
    for row in rows:
        if row.get("redis_unread_kb"):
            print(
                f"  {row['books']} books: up to {row['redis_unread_kb']:.0f} KiB from Redis sat unread"
                " in a server socket's receive queue"
            )
        if row.get("profile"):
            print(f"  {row['books']} books: stack profile of the make phase in {row['profile']}")
        if row["warmup_errors"]:
            print(f"  {row['books']} books: the warm-up page had {row['warmup_errors']}")
        if row["error_samples"] or row["mismatches"]:
            print(f"  {row['books']} books: errors {row['error_samples']}")
            shown = dict(list(row["mismatches"].items())[:5])
            if shown:
                print(f"  {row['books']} books: text mismatches {shown}")
        if row["server_log_tracebacks"] or row["server_log_500s"]:
            print(
                f"  {row['books']} books: server log has {row['server_log_tracebacks']} tracebacks, "
                f"{row['server_log_500s']} 'Internal Server Error' ({row['run_dir']}/daphne.log)"
            )


def code_version() -> str:
    """The commit and any uncommitted server files (read-only git), so figures name their code."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, timeout=10
        ).stdout.strip()
        status = subprocess.run(
            ["git", "status", "--porcelain", "--", "books", "streaming", "littlewriter", "templates"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (no git)"
    changed = [line[3:] for line in status if line.strip()]
    return f"{head or 'unknown'}" + (f" + uncommitted {', '.join(changed)}" if changed else "")


def orchestrate(argv: Sequence[str]) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--books", default="1,50,200", help="comma-separated numbers of books (default 1,50,200)"
    )
    parser.add_argument(
        "--config", default="embedded,redis", help="embedded, redis or both, comma-separated (default both)"
    )
    parser.add_argument(
        "--arrival",
        default="steady,burst",
        help="steady (N books live at once, pages starting evenly; the middle of three rounds measured),"
        " burst (N books press make at the same moment) or both, comma-separated (default both)",
    )
    parser.add_argument(
        "--py-spy",
        default="",
        help="path to a py-spy binary: record the server's GIL-holding stacks during the make phase"
        " (raw format, kept in the run folder; implies --keep)",
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1 and 10 books")
    parser.add_argument("--keep", action="store_true", help="keep the working folder (logs, raw frames)")
    parser.add_argument("--json", help="also write every figure to this JSON file")
    parser.add_argument(
        "--mysql-connections",
        type=int,
        default=0,
        help="raise MariaDB's max_connections to this (a global setting) when it is lower; each"
        " concurrent request or socket handshake holds one connection",
    )
    parser.add_argument(
        "--processes",
        type=int,
        default=1,
        help="server processes (redis only); each family's requests go to one and its socket to the"
        " next, so every frame crosses processes",
    )
    parser.add_argument(
        "--backlog",
        type=int,
        default=1024,
        help="Daphne's accept queue (scripts/serve's LW_LISTEN_BACKLOG; Twisted's own default is 50)",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample Daphne's stacks during the make phase (a little slower; implies --keep)",
    )
    args = parser.parse_args(argv)
    if args.processes < 1:
        parser.error("--processes must be 1 or more")
    if args.processes > 1 and (args.profile or args.py_spy):
        parser.error("--profile and --py-spy sample one server process: use them with --processes 1")
    counts = [1, 10] if args.quick else [int(n) for n in args.books.split(",") if n.strip()]
    configs = [c.strip() for c in args.config.split(",") if c.strip()]
    for config in configs:
        if config not in ("embedded", "redis"):
            parser.error(f"unknown configuration {config!r}")
    arrivals = [a.strip() for a in args.arrival.split(",") if a.strip()]
    for arrival in arrivals:
        if arrival not in ARRIVALS:
            parser.error(f"unknown arrival {arrival!r}")

    workdir = Path(tempfile.mkdtemp(prefix="lw-bench-"))
    upstream_port = free_port()
    upstream_log = workdir / "upstream.jsonl"
    upstream = subprocess.Popen(
        [PYTHON, SELF, "_upstream", "--port", str(upstream_port), "--log", str(upstream_log)],
        cwd=ROOT,
    )
    upstream_url = f"http://{HOST}:{upstream_port}/v1"
    print(
        f"upstream {upstream_url}: story first chunk {STORY_FIRST_CHUNK} s then {STORY_TOKENS_PER_SECOND:.0f}"
        f" tokens/s to {STORY_TOTAL} s ({STORY_CHUNKS} chunks), picture {PICTURE_SECONDS} s, question"
        f" {QUESTION_SECONDS} s, new words {WORDS_SECONDS} s, each moderation {MODERATION_SECONDS} s"
        f" -> slowest chain {SLOWEST_CHAIN:.2f} s"
    )
    print(f"working folder {workdir}")
    print(f"code under test: {code_version()}")
    machine = {"probe_before_s": machine_probe()}
    print(f"machine probe: a fixed Python loop took {machine['probe_before_s']:.2f} s of CPU")
    results: dict[str, list[dict[str, Any]]] = {}
    try:
        wait_port(upstream_port, 20)
        for config in configs:
            if config == "redis":
                prepare_mysql(server_env(config, workdir / "var-redis", upstream_url), args.mysql_connections)
            for arrival in arrivals:
                for books in counts:
                    if books == 1 and arrival != arrivals[0]:
                        continue  # one book arrives the same way either way
                    several = config == "redis" and args.processes > 1
                    across = f", {args.processes} server processes" if several else ""
                    print(f"-- {config}, {arrival}, {books} books{across} ...", flush=True)
                    probe_before = machine_probe()
                    try:
                        row = run_once(
                            config,
                            books,
                            workdir,
                            upstream_url,
                            upstream.pid,
                            upstream_log,
                            args.profile,
                            arrival,
                            args.py_spy,
                            args.backlog,
                            args.processes if config == "redis" else 1,
                        )
                    except (RuntimeError, OSError, subprocess.SubprocessError) as failure:
                        print(f"   this configuration fell over before figures: {failure}", flush=True)
                        continue
                    # Beside each row: a machine that slowed during it says so here.
                    row["probe_s"] = f"{probe_before:.2f}/{machine_probe():.2f}"
                    key = f"{config} {arrival}" + (f" x{args.processes}" if across else "")
                    results.setdefault(key, []).append(row)
                    print(
                        "   "
                        + "  ".join(f"{h}={c}" for (h, _, _), c in zip(COLUMNS, format_row(row), strict=True))
                    )
        for config, rows in results.items():
            print_table(config, rows)
    finally:
        stop_process(upstream, 5)
        machine["probe_after_s"] = machine_probe()
        print(
            f"machine probe: the same loop took {machine['probe_after_s']:.2f} s at the end"
            " (machines of one kind differ, and one machine drifts: compare figures only beside it)"
        )
        if args.json:
            document = {"code": code_version(), "machine": machine, "results": results}
            Path(args.json).write_text(json.dumps(document, indent=2))
        if args.keep or args.profile or args.py_spy:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def machine_probe() -> float:
    """CPU seconds of a fixed pure-Python loop: how quick this machine is, right now.

    Machines of the same kind ran nearly the same code at 66 and at 125-139 ms a page;
    printed beside the figures, this tells a slower machine from a slower change.
    """
    started = time.process_time()
    total = 0
    for number in range(5_000_000):
        total += number * number % 7
    return time.process_time() - started


def main() -> None:
    roles = {"_upstream": upstream_main, "_seed": seed_main, "_clients": clients_main, "_daphne": daphne_main}
    if len(sys.argv) > 1 and sys.argv[1] in roles:
        roles[sys.argv[1]](sys.argv[2:])
    else:
        orchestrate(sys.argv[1:])


if __name__ == "__main__":
    main()
