"""A small OpenAI-compatible server on loopback, so adapter tests go through the real SDK over HTTP.

    with FakeOpenAI() as server:                      # or the ``fake_openai`` fixture
        server.script("chat", status=429)             # the next chat call answers 429
        server.script("chat", chunks=["Once ", "upon"], stop_after=1)   # cut the stream after 1 chunk
        server.script("images", url_only=True)        # the next picture comes as a URL only
        server.script("chat", usage=(120, 45))        # the stream's usage chunk says 120 in, 45 out
        server.script("moderations", flagged=["violence"], when="dragon")  # flag the next text with "dragon"
        server.script("moderations", status=500, times=3)                 # the safety check is down
        ... call the adapter with base_url=server.base_url ...
        server.requests                               # every JSON body received, in order

Scripts are queued per route ("chat", "images" or "moderations") and used once each, in
order; a script with ``when`` is used only by a request whose text contains that string
(so one section of a page can be scripted while others run at the same time). With none
that fits, the server answers a default that makes a sensible page: a story text that
depends on the request, streamed word by word, a question ending with "?" when the
system message asks for a question, two or three "word — explanation" lines for words
from the <page> when it asks for new words, a real PNG, and a moderation result that
flags nothing.

Usage, as the real API reports it: a stream asked with ``stream_options={"include_usage":
true}`` ends with one more chunk that has no choices and a ``usage`` (prompt and completion
tokens), and a picture from a GPT image model carries ``usage`` (input and output tokens;
DALL·E models report none). The figures are scripted with ``usage=(in, out)`` or made up
from the request (``default_usage``); ``no_usage=True`` leaves them out.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

import pytest
from PIL import Image

ROUTES = {
    "/v1/chat/completions": "chat",
    "/v1/images/generations": "images",
    "/v1/moderations": "moderations",
}
# Every category the moderation endpoint reports, as the API spells them.
MODERATION_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/instructions",
    "self-harm/intent",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
_DISCONNECTED = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError)

_STORY_OPENINGS = [
    "Once upon a time, in a meadow full of daisies,",
    "One sunny morning, beside a sparkling river,",
    "Long ago, in a cosy house at the edge of the woods,",
    "On a windy afternoon, high up on a green hill,",
]
_STORY_MIDDLES = [
    "the friends found a tiny door hidden under a mushroom.",
    "a friendly cloud came down to say hello.",
    "a little fox asked everyone to help find its lost red ball.",
    "the stars began to hum a soft and happy song.",
]
_STORY_CLOSINGS = [
    "Everyone smiled and held hands.",
    "They laughed so much that the birds laughed too.",
    "And they knew the day was only just beginning.",
]
_QUESTIONS = [
    "What do you think they will find behind the door?",
    "Where should the friends go next?",
    "Who do you think is knocking?",
    "What will they do to help?",
]
_FALLBACK_WORDS = ["meadow", "sparkling", "cosy"]


@dataclass
class Reply:
    """One scripted answer. ``stop_after`` closes the connection after that many text chunks."""

    status: int = 200
    delay: float = 0.0
    chunk_delay: float = 0.0
    chunks: list[str] | None = None
    text: str | None = None
    stop_after: int | None = None
    finish_reason: str = "stop"
    url_only: bool = False
    error_code: str | None = None
    error_message: str = "Scripted failure from the fake OpenAI server."
    usage: tuple[int, int] | None = None
    no_usage: bool = False
    flagged: list[str] | None = None
    """Moderation categories (API names) to flag; empty or None flags nothing."""
    when: str | None = None
    """Used only by a request whose text contains this (case-insensitive)."""


@dataclass
class _Script:
    replies: dict[str, deque[Reply]] = field(
        default_factory=lambda: {route: deque() for route in ROUTES.values()}
    )
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next(self, route: str, request_text: str = "") -> Reply:
        with self.lock:
            queue = self.replies[route]
            for reply in queue:
                if reply.when is None or reply.when.lower() in request_text.lower():
                    queue.remove(reply)
                    return reply
            return Reply()


def tiny_png(seed: str = "", size: tuple[int, int] = (16, 16)) -> bytes:
    """A real PNG whose colour depends on ``seed``."""
    digest = hashlib.sha256(seed.encode()).digest()
    buffer = io.BytesIO()
    Image.new("RGB", size, (digest[0], digest[1], digest[2])).save(buffer, format="PNG")
    return buffer.getvalue()


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content") or ""
    if isinstance(content, list):  # content parts
        return " ".join(part.get("text", "") for part in content if isinstance(part, dict))
    return str(content)


def default_text(body: dict[str, Any]) -> str:
    """A page, or a question if the system message asks for one; varies with the request."""
    messages = body.get("messages") or []
    seed = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).digest()
    system = " ".join(_message_text(m) for m in messages if m.get("role") in ("system", "developer"))
    if "new words" in system.lower():
        return new_words_text(messages)
    if "question" in system.lower():
        return _QUESTIONS[seed[0] % len(_QUESTIONS)]
    return " ".join(
        [
            _STORY_OPENINGS[seed[0] % len(_STORY_OPENINGS)],
            _STORY_MIDDLES[seed[1] % len(_STORY_MIDDLES)],
            _STORY_CLOSINGS[seed[2] % len(_STORY_CLOSINGS)],
        ]
    )


def new_words_text(messages: list[dict[str, Any]]) -> str:
    """Lines "word — explanation" for the two or three longest words inside the <page> tags."""
    user = " ".join(_message_text(m) for m in messages if m.get("role") == "user")
    page = re.search(r"<page>(.*?)</page>", user, flags=re.DOTALL)
    found = re.findall(r"[^\W\d_]{4,}", page.group(1) if page else "")
    words = sorted(dict.fromkeys(word.lower() for word in found), key=len, reverse=True)[:3]
    if len(words) < 2:
        words = _FALLBACK_WORDS
    return "\n".join(f"{word} — a word from the page, said simply for a child." for word in words)


# What a GPT image model bills for one low-quality 1024x1024 picture's output.
PICTURE_OUTPUT_TOKENS = 272


def default_usage(body: dict[str, Any], pieces: list[str]) -> tuple[int, int]:
    """Made-up but stable figures: a token per word of the request, one per piece sent back."""
    words = len(re.findall(r"\S+", json.dumps(body.get("messages") or body.get("prompt") or "")))
    return words, len(pieces) if pieces else PICTURE_OUTPUT_TOKENS


def request_text(body: dict[str, Any]) -> str:
    """The words a request carries, for ``when`` scripts: the messages, the prompt or the input."""
    parts = [_message_text(m) for m in body.get("messages") or [] if isinstance(m, dict)]
    parts.append(str(body.get("prompt", "")))
    raw = body.get("input", "")
    parts.extend(str(item) for item in (raw if isinstance(raw, list) else [raw]))
    return "\n".join(parts)


def split_into_chunks(text: str) -> list[str]:
    """Word by word, spaces kept, so the chunks join back to the exact text."""
    return re.findall(r"\s*\S+\s*", text) or [text]


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 for chunked streaming, as the real API does.
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def do_POST(self) -> None:
        route = ROUTES.get(self.path.split("?")[0])
        body = self._read_json()
        if route is None:
            self._send_json(
                404, {"error": {"message": f"No route {self.path}", "type": "invalid_request_error"}}
            )
            return
        self.server.fake.record(route, body)
        reply = self.server.fake.scripts.next(route, request_text(body))
        if reply.delay and self.server.fake.stopping.wait(reply.delay):
            self.close_connection = True  # the server is stopping; answer nothing
            return
        try:
            if reply.status != 200:
                self._send_error(reply)
            elif route == "images":
                self._send_picture(body, reply)
            elif route == "moderations":
                self._send_moderation(body, reply)
            elif body.get("stream"):
                self._send_stream(body, reply)
            else:
                self._send_completion(body, reply)
        except _DISCONNECTED:
            self.close_connection = True  # the client gave up (e.g. it timed out)

    def _read_json(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b"{}"
        try:
            data = json.loads(raw)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}

    def _send_json(self, status: int, payload: dict[str, Any]) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, reply: Reply) -> None:
        error_type = "rate_limit_error" if reply.status == 429 else "invalid_request_error"
        if reply.status >= 500:
            error_type = "server_error"
        error = {"message": reply.error_message, "type": error_type, "param": None, "code": reply.error_code}
        self._send_json(reply.status, {"error": error})

    def _send_picture(self, body: dict[str, Any], reply: Reply) -> None:
        if reply.url_only:
            image: dict[str, Any] = {"url": "https://images.example.invalid/picture.png"}
        else:
            image = {"b64_json": base64.b64encode(tiny_png(str(body.get("prompt", "")))).decode()}
        answer: dict[str, Any] = {"created": int(time.time()), "data": [image]}
        if not reply.no_usage and not str(body.get("model", "")).startswith("dall-e"):
            used_in, used_out = reply.usage or default_usage(body, [])
            answer["usage"] = {
                "input_tokens": used_in,
                "output_tokens": used_out,
                "total_tokens": used_in + used_out,
                "input_tokens_details": {"text_tokens": used_in, "image_tokens": 0},
            }
        self._send_json(200, answer)

    def _send_moderation(self, body: dict[str, Any], reply: Reply) -> None:
        raw = body.get("input", "")
        inputs = raw if isinstance(raw, list) else [raw]

        def result(text: Any) -> dict[str, Any]:
            # A script with ``when`` flags only the inputs that carry its text, as the real
            # endpoint judges each input of a batch on its own.
            applies = reply.when is None or reply.when.lower() in str(text).lower()
            flagged = set(reply.flagged or ()) if applies else set()
            return {
                "flagged": bool(flagged),
                "categories": {name: name in flagged for name in MODERATION_CATEGORIES},
                "category_scores": {
                    name: 0.9 if name in flagged else 0.001 for name in MODERATION_CATEGORIES
                },
                "category_applied_input_types": {name: ["text"] for name in MODERATION_CATEGORIES},
            }

        self._send_json(
            200,
            {
                "id": "modr-fake",
                "model": body.get("model", "omni-moderation-latest"),
                "results": [result(text) for text in inputs],
            },
        )

    def _text(self, body: dict[str, Any], reply: Reply) -> list[str]:
        if reply.chunks is not None:
            return list(reply.chunks)
        return split_into_chunks(reply.text if reply.text is not None else default_text(body))

    def _send_completion(self, body: dict[str, Any], reply: Reply) -> None:
        message = {"role": "assistant", "content": "".join(self._text(body, reply)), "refusal": None}
        self._send_json(
            200,
            {
                "id": "chatcmpl-fake",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body.get("model", "fake-model"),
                "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason}],
            },
        )

    def _send_stream(self, body: dict[str, Any], reply: Reply) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        model = body.get("model", "fake-model")
        pieces = self._text(body, reply)
        self._send_event(_chunk(model, {"role": "assistant", "content": ""}))
        for index, piece in enumerate(pieces):
            if reply.stop_after is not None and index >= reply.stop_after:
                # Hang up without the closing HTTP chunk: the body is incomplete, as when a
                # proxy or the provider drops the connection mid-answer.
                self.close_connection = True
                return
            if reply.chunk_delay and self.server.fake.stopping.wait(reply.chunk_delay):
                self.close_connection = True
                return
            self._send_event(_chunk(model, {"content": piece}))
        self._send_event(_chunk(model, {}, finish_reason=reply.finish_reason))
        if (body.get("stream_options") or {}).get("include_usage") and not reply.no_usage:
            prompt, completion = reply.usage or default_usage(body, pieces)
            usage = {
                "prompt_tokens": prompt,
                "completion_tokens": completion,
                "total_tokens": prompt + completion,
            }
            self._send_event({**_chunk(model, {}), "choices": [], "usage": usage})
        self._send_chunk(b"data: [DONE]\n\n")
        self._send_chunk(b"")  # the closing chunk of the HTTP body

    def _send_event(self, payload: dict[str, Any]) -> None:
        self._send_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _send_chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()


def _chunk(model: str, delta: dict[str, Any], finish_reason: str | None = None) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # Do not wait at shutdown for handlers still sleeping through a scripted delay.
    block_on_close = False

    def __init__(self, fake: FakeOpenAI) -> None:
        self.fake = fake
        super().__init__(("127.0.0.1", 0), _Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client hanging up mid-answer is expected in these tests


class FakeOpenAI:
    """The fake server; start it with ``with FakeOpenAI() as server`` or ``start()``/``stop()``."""

    def __init__(self) -> None:
        self.scripts = _Script()
        self.stopping = threading.Event()
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("The fake OpenAI server is not running.")
        return f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every JSON body received, in order."""
        with self._lock:
            return [body for _, body in self.received]

    def requests_to(self, route: str) -> list[dict[str, Any]]:
        with self._lock:
            return [body for name, body in self.received if name == route]

    def record(self, route: str, body: dict[str, Any]) -> None:
        with self._lock:
            self.received.append((route, body))

    def script(
        self,
        route: str = "chat",
        *,
        status: int = 200,
        delay: float = 0.0,
        chunk_delay: float = 0.0,
        chunks: list[str] | None = None,
        text: str | None = None,
        stop_after: int | None = None,
        finish_reason: str = "stop",
        url_only: bool = False,
        error_code: str | None = None,
        usage: tuple[int, int] | None = None,
        no_usage: bool = False,
        flagged: list[str] | None = None,
        when: str | None = None,
        times: int = 1,
    ) -> None:
        """Queue how the next ``times`` calls to ``route`` ("chat", "images", "moderations") are answered."""
        if route not in self.scripts.replies:
            raise ValueError(f"route must be one of {sorted(self.scripts.replies)}, not {route!r}")
        reply = Reply(
            status=status,
            delay=delay,
            chunk_delay=chunk_delay,
            chunks=chunks,
            text=text,
            stop_after=stop_after,
            finish_reason=finish_reason,
            url_only=url_only,
            error_code=error_code,
            usage=usage,
            no_usage=no_usage,
            flagged=flagged,
            when=when,
        )
        with self.scripts.lock:
            self.scripts.replies[route].extend([reply] * times)

    def start(self) -> FakeOpenAI:
        self._server = _Server(self)
        self._thread = threading.Thread(
            # A short poll keeps shutdown (and so every test's teardown) quick.
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fake-openai",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()  # wakes handlers sleeping through a delay
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    """A running fake server, shut down after the test."""
    with FakeOpenAI() as server:
        yield server


def point_settings_at(settings: Any, server: FakeOpenAI, *, timeout: float = 1.0) -> None:
    """Send the OpenAI adapters to ``server``: a test key, no retries, a short timeout."""
    settings.OPENAI_API_KEY = "test-key"
    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "OPENAI_BASE_URL": server.base_url,
        "OPENAI_MAX_RETRIES": 0,
        "OPENAI_TIMEOUT_SECONDS": timeout,
    }


@pytest.fixture
def fake_openai_settings(settings: Any, fake_openai: FakeOpenAI) -> FakeOpenAI:
    """The fake server, with the OpenAI settings pointing at it (pytest-django's ``settings``)."""
    point_settings_at(settings, fake_openai)
    return fake_openai
