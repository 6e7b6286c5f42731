"""Two server processes behind one address book: a run started through one is watched through
the other, because nothing of a run lives only in process memory (Redis configuration)."""

from __future__ import annotations

import asyncio
import html
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from django.conf import settings
from django.test import Client

from books import drafts
from tests.conftest import USING_REDIS
from tests.fake_openai import FakeOpenAI
from tests.people import make_parent, start_book_with_child

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not (USING_REDIS and settings.DATABASES["default"]["ENGINE"].endswith("mysql")),
        reason="the embedded default is one server process by design; this needs REDIS_URL and MySQL",
    ),
]

ROOT = Path(__file__).resolve().parent.parent
PIECE = re.compile(r'<span hx-swap-oob="beforeend:#section-story-text">(.*?)</span>', re.S)
SNAPSHOT_STORY = re.compile(r'id="section-story-text"[^>]*>(.*?)</div>', re.S)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def database_url() -> str:
    db = settings.DATABASES["default"]  # the test database, which these servers share with us
    return (
        f"mysql://{db['USER']}:{db['PASSWORD']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 3306}/{db['NAME']}"
    )


def server_env(upstream: FakeOpenAI) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("DJANGO_SETTINGS")}
    env.update(
        DJANGO_SETTINGS_MODULE="littlewriter.settings",
        REDIS_URL=settings.REDIS_URL,
        LW_CACHE_PREFIX=settings.CACHES["default"].get("KEY_PREFIX", "lw"),
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=upstream.base_url,
        LW_STORYTELLER="openai",
        LW_OPENAI_MAX_RETRIES="0",
    )
    if settings.DATABASES["default"]["ENGINE"].endswith("mysql"):
        env["DATABASE_URL"] = database_url()
    return env


@pytest.fixture
def two_servers(fake_openai: FakeOpenAI, tmp_path: Path) -> Iterator[list[str]]:
    env = server_env(fake_openai)
    processes, urls = [], []
    for index in range(2):
        port = free_port()
        log = (tmp_path / f"daphne-{index}.log").open("w")
        daphne = Path(sys.executable).with_name("daphne")
        processes.append(
            subprocess.Popen(
                [str(daphne), "-b", "127.0.0.1", "-p", str(port), "littlewriter.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        )
        urls.append(f"http://127.0.0.1:{port}")
    try:
        for url in urls:
            wait_until_answering(url)
        yield urls
    finally:
        for process in processes:
            process.terminate()
            process.wait(timeout=10)


def wait_until_answering(url: str, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            requests.get(url + "/", timeout=1)
            return
        except requests.ConnectionError:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not answer within {seconds} s")


def signed_in(user: Any) -> dict[str, str]:
    client = Client()
    client.force_login(user)
    return {"sessionid": client.cookies["sessionid"].value}


async def watch_until_kept(ws_url: str, origin: str, cookies: dict[str, str], ready: asyncio.Event) -> str:
    """The story text as a browser would assemble it: the snapshot's, then every piece after it."""
    import websockets

    cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
    story = ""
    async with websockets.connect(ws_url, origin=origin, additional_headers={"Cookie": cookie}) as socket_:  # type: ignore[arg-type]
        ready.set()
        async with asyncio.timeout(30):
            async for message in socket_:
                text = str(message)
                whole = SNAPSHOT_STORY.search(text)
                if whole:
                    story = html.unescape(whole.group(1))
                story += "".join(html.unescape(piece) for piece in PIECE.findall(text))
                if 'class="run-state is-complete"' in text:
                    return story
    raise AssertionError("the socket closed before the page was kept")


async def test_a_run_started_through_one_process_streams_to_a_socket_on_the_other(
    two_servers: list[str], fake_openai: FakeOpenAI
) -> None:
    from asgiref.sync import sync_to_async

    maker, watcher = two_servers
    user = await sync_to_async(make_parent)("ada")
    cookies = await sync_to_async(signed_in)(user)
    draft = await sync_to_async(start_book_with_child)(
        user, characters=[("Mina", "a girl with a red umbrella")], page_count=3, language="en"
    )
    fake_openai.script("chat", chunk_delay=0.03)  # the story streams slowly enough to be watched mid-way

    ready = asyncio.Event()
    ws_url = watcher.replace("http://", "ws://") + f"/ws/drafts/{draft.draft_id}/"
    watching = asyncio.create_task(watch_until_kept(ws_url, watcher, cookies, ready))
    await asyncio.wait_for(ready.wait(), timeout=10)

    def post_make() -> int:
        session = requests.Session()
        session.cookies.update(cookies)
        session.get(f"{maker}/drafts/{draft.draft_id}/", timeout=10)  # sets the CSRF cookie
        answer = session.post(
            f"{maker}/drafts/{draft.draft_id}/pages/1/make",
            data={"child_input": "a dragon comes to tea"},
            headers={"X-CSRFToken": session.cookies.get("csrftoken") or ""},
            allow_redirects=False,
            timeout=10,
        )
        return answer.status_code

    assert await asyncio.to_thread(post_make) == 302
    story_seen = await watching
    kept = await sync_to_async(drafts.current)(user.pk)
    assert kept is not None and len(kept.pages) == 1
    assert story_seen.strip() == kept.pages[0].text  # every piece, once, through the other process
