"""A family makes books in a real browser: Playwright driving Debian's headless Chromium.

The app runs as ``scripts/serve`` runs it: Daphne in a process of its own (HTTP and
WebSockets, page runs in its event loop), on a database, cache and picture store of its
own derived from this run's configuration (a fresh SQLite file in a temporary var
directory by default; ``<name>_browser``, the next Redis database and
``<bucket>-browser`` on real services). Its storyteller is the OpenAI adapters talking to
the loopback fake server of this process, which each test scripts: slow enough to watch
the tabs fill, or failing once. The tests touch nothing but the browser.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
import requests
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from tests.fake_openai import FakeOpenAI, default_text

pytestmark = [pytest.mark.browser]

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
ARTIFACTS = ROOT / "test-artifacts"
SERVER_LOG = ARTIFACTS / "browser-server.log"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"
# Every run tells a different story, so the README's picture is only retaken when asked
# (or missing): a test run should not leave the working tree changed.
UPDATE_DOCS = os.environ.get("LW_UPDATE_DOCS_SCREENSHOT") == "1"
PAGE_TIMEOUT_MS = 30_000
PASSWORD = "a-long-family-password-42"
# Story pieces arrive this far apart: slow enough to watch, quick enough for a test.
SLOW_CHUNKS = 0.08
# A picture takes this long to draw: the story streams while it is being drawn.
SLOW_PICTURE = 4.0


# -- the server: Daphne in its own process, on services of its own -----------------------------


@dataclass
class AppServer:
    url: str
    upstream: FakeOpenAI
    log: Path
    env: dict[str, str]  # the server's configuration, for ``manage.py`` commands against it


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _with_path(url: str, path: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, parts.fragment))


def _mysql(url: str) -> Any:
    import dj_database_url
    import MySQLdb

    config = dj_database_url.parse(url)
    return MySQLdb.connect(
        host=config.get("HOST") or "127.0.0.1",
        port=int(config.get("PORT") or 3306),
        user=config.get("USER") or "root",
        password=config.get("PASSWORD") or "",
    )


@contextmanager
def _own_database(url: str) -> Iterator[str]:
    """``<name>_browser`` on the same MySQL server: created empty, dropped afterwards."""
    name = urlsplit(url).path.lstrip("/") + "_browser"
    connection = _mysql(url)
    try:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.cursor().execute(
            f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        )
        yield _with_path(url, "/" + name)
    finally:
        connection.cursor().execute(f"DROP DATABASE IF EXISTS `{name}`")
        connection.close()


@contextmanager
def _own_redis(url: str, prefix: str) -> Iterator[str]:
    """The next Redis database number; the server's keys (under ``prefix``) are emptied before and after."""
    import redis

    number = int(urlsplit(url).path.lstrip("/") or 0)
    own = _with_path(url, f"/{(number + 1) % 16}")
    client = redis.Redis.from_url(own)

    def forget() -> None:
        for key in client.scan_iter(match=f"{prefix}:*", count=500):
            client.delete(key)

    try:
        forget()
        yield own
    finally:
        forget()
        client.close()


@contextmanager
def _own_bucket(bucket: str, endpoint: str, region: str) -> Iterator[str]:
    """``<bucket>-browser``: created if missing, emptied afterwards."""
    import boto3

    name = f"{bucket}-browser"
    resource = boto3.resource("s3", endpoint_url=endpoint or None, region_name=region)
    if resource.Bucket(name).creation_date is None:
        resource.create_bucket(Bucket=name)
    try:
        yield name
    finally:
        resource.Bucket(name).objects.all().delete()


@contextmanager
def own_services(upstream: FakeOpenAI, var_dir: Path) -> Iterator[dict[str, str]]:
    """This run's configuration, each service swapped for one of the browser server's own."""
    env = dict(os.environ)
    for adapter in ("STORY_WRITER", "QUESTION_WRITER", "ILLUSTRATOR", "WORD_EXPLAINER", "MODERATOR"):
        env.pop(f"LW_{adapter}", None)
    env.pop("LW_MEDIA_ROOT", None)
    prefix = f"{env.get('LW_CACHE_PREFIX') or 'lw'}-browser"
    env.update(
        DJANGO_SETTINGS_MODULE="littlewriter.settings",
        LW_VAR_DIR=str(var_dir),
        LW_CACHE_PREFIX=prefix,
        OPENAI_API_KEY="test-key",
        OPENAI_BASE_URL=upstream.base_url,
        LW_STORYTELLER="openai",
        LW_OPENAI_MAX_RETRIES="0",
        PYTHONUNBUFFERED="1",
    )
    with ExitStack() as services:
        if env.get("DATABASE_URL"):
            env["DATABASE_URL"] = services.enter_context(_own_database(env["DATABASE_URL"]))
        if env.get("REDIS_URL"):
            env["REDIS_URL"] = services.enter_context(_own_redis(env["REDIS_URL"], prefix))
        if env.get("S3_BUCKET"):
            region = env.get("S3_REGION") or "us-east-1"
            endpoint = env.get("S3_ENDPOINT_URL", "")
            env["S3_BUCKET"] = services.enter_context(_own_bucket(env["S3_BUCKET"], endpoint, region))
        yield env


def _manage(env: dict[str, str], *args: str) -> None:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")


def log_tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def wait_until_answering(url: str, process: subprocess.Popen[bytes], log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Daphne exited with {process.returncode}:\n{log_tail(log)}")
        try:
            requests.get(url + "/", timeout=1)
            return
        except (requests.ConnectionError, requests.Timeout):  # not listening yet, or a slow first answer
            time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer within {seconds} s:\n{log_tail(log)}")


@pytest.fixture(scope="module")
def app_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppServer]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: scripts/bootstrap --test installs it")
    ARTIFACTS.mkdir(exist_ok=True)
    with FakeOpenAI() as upstream, own_services(upstream, tmp_path_factory.mktemp("browser-var")) as env:
        _manage(env, "migrate", "--noinput")
        _manage(env, "createcachetable")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with SERVER_LOG.open("w") as log:
            # Started as scripts/serve starts it: a Twisted endpoint string with its accept queue.
            endpoint = f"tcp:port={port}:interface=127.0.0.1:backlog=1024"
            daphne = subprocess.Popen(
                [str(BIN / "daphne"), "-e", endpoint, "littlewriter.asgi:application"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            wait_until_answering(url, daphne, SERVER_LOG)
            yield AppServer(url=url, upstream=upstream, log=SERVER_LOG, env=env)
        finally:
            daphne.terminate()
            try:
                daphne.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daphne.kill()
                daphne.wait()


@pytest.fixture
def server(app_server: AppServer, request: pytest.FixtureRequest) -> Iterator[AppServer]:
    """The shared server, its fake storyteller with nothing queued; its log's tail if the test fails."""
    _forget_scripts(app_server.upstream)
    failed_before = request.session.testsfailed
    yield app_server
    _forget_scripts(app_server.upstream)
    if request.session.testsfailed > failed_before:
        reporter = request.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is not None:
            reporter.write_sep("-", f"the browser server's log ({app_server.log}), last lines")
            reporter.write_line(log_tail(app_server.log))


def _forget_scripts(upstream: FakeOpenAI) -> None:
    """Nothing queued and nothing received: each test scripts and counts its own calls."""
    with upstream.scripts.lock:
        for queue in upstream.scripts.replies.values():
            queue.clear()
    upstream.received.clear()


@pytest.fixture
def browser_page(server: AppServer, request: pytest.FixtureRequest) -> Iterator[Page]:
    failed_before = request.session.testsfailed
    with sync_playwright() as playwright:
        browser, context, page = _a_live_page(playwright)
        console: list[str] = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield page
        finally:
            if request.session.testsfailed > failed_before:
                failed = ARTIFACTS / f"failed-{request.node.name}"
                Path(f"{failed}-console.txt").write_text("\n".join(console))
                with contextlib.suppress(PlaywrightError):  # a browser that died has no screen
                    page.screenshot(path=f"{failed}.png", full_page=True)
            with contextlib.suppress(PlaywrightError):
                context.close()
                browser.close()


def _a_live_page(playwright: Playwright) -> tuple[Browser, BrowserContext, Page]:
    """A new Chromium and a page of it that has answered a first navigation.

    Chromium once closed before a test's first navigation (``TargetClosedError``, one run of
    the browser tests in about fifteen on 2026-12-05). A browser that does not answer
    about:blank is closed and launched once more; one that dies again fails the test.
    """
    browser, context, page = _launch(playwright)
    try:
        page.goto("about:blank")
    except PlaywrightError:
        with contextlib.suppress(PlaywrightError):
            browser.close()
        browser, context, page = _launch(playwright)
        page.goto("about:blank")
    return browser, context, page


def _launch(playwright: Playwright) -> tuple[Browser, BrowserContext, Page]:
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    return browser, context, context.new_page()


# -- what a family does ------------------------------------------------------------------------


def expect_picture_shown(page: Page, selector: str) -> None:
    """The <img> really loaded (a broken or forbidden picture has a natural width of 0)."""
    image = page.locator(selector)
    image.scroll_into_view_if_needed()
    image.evaluate("img => img.decode()")
    assert image.evaluate("img => img.naturalWidth") > 0


def sign_up(page: Page, base_url: str, username: str, screenshot: str = "") -> None:
    page.goto(base_url + "/")
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.get_by_role("link", name="Sign up — it's free").click()
    page.fill("#id_username", username)
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name=f"Hello, {username}!").wait_for()


def add_first_child(page: Page, nickname: str = "Sunny", screenshot: str = "") -> None:
    """A parent with no child yet is asked for one before the book's form."""
    page.get_by_role("heading", name="First, who is making it with you?").wait_for()
    page.fill("#id_nickname", nickname)
    page.get_by_label("6–8 years").check()
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.get_by_role("button", name="Add this child").click()
    page.get_by_role("heading", name="Who is in your story?").wait_for()


def start_book(page: Page, pages: int = 3, screenshot: str = "", child_screenshot: str = "") -> None:
    """Start a book with the parent's child (added first if the parent has none yet)."""
    page.get_by_role("link", name="Start a book").click()
    page.wait_for_url("**/new/")
    if page.locator("#id_nickname").count():
        add_first_child(page, screenshot=child_screenshot)
    page.get_by_label("Sunny (6–8 years)").check()
    page.fill("#id_characters-0-name", "Mina")
    page.fill("#id_characters-0-description", "a girl with a red umbrella")
    page.fill("#id_characters-1-name", "Bori")
    page.fill("#id_characters-1-description", "a sleepy orange cat")
    page.fill("#id_page_count", str(pages))
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.get_by_role("button", name="Start the book").click()
    page.get_by_role("heading", name=f"Page 1 of {pages}").wait_for()


def ask_for_page(page: Page, number: int, child_input: str) -> None:
    """Type what happens next and press the button; the live tabs take over from there.

    htmx posts the form and swaps the book in place: the page is not loaded again and its
    socket stays open.
    """
    page.fill("#id_child_input", child_input)
    with page.expect_response(lambda answer: answer.url.endswith(f"/pages/{number}/make")) as answer:
        page.get_by_role("button", name=f"Make page {number}").click()
    assert answer.value.status == 200
    page.locator("#run-state").wait_for(state="attached")


def make_page(page: Page, number: int, child_input: str) -> None:
    ask_for_page(page, number, child_input)
    page.locator(f"#page-{number}").wait_for()  # the card appears once the page is kept


def words(text: str) -> list[str]:
    return text.split()


LIVE_STATE = """() => {
  const classes = (selector) => document.querySelector(selector)?.className ?? "";
  return {
    story: classes("#badge-story"),
    picture: classes("#badge-picture"),
    question: classes("#badge-question"),
    newWords: classes("#badge-new_words"),
    storyText: document.querySelector("#section-story-text")?.textContent ?? "",
    run: classes("#run-state"),
  };
}"""


def live_state(page: Page) -> dict[str, str]:
    state: dict[str, str] = page.evaluate(LIVE_STATE)
    return state


def a_page_under_way(page: Page, server: AppServer, username: str, child_input: str) -> None:
    """A new family's first page, its story being written (about 3 s) and its picture drawn."""
    server.upstream.script("chat", chunk_delay=0.12, times=3)
    server.upstream.script("images", delay=SLOW_PICTURE)
    sign_up(page, server.url, username)
    start_book(page)
    ask_for_page(page, 1, child_input)
    page.locator("#badge-story.is-streaming").wait_for()


def streaming(badge_classes: str) -> bool:
    return "is-streaming" in badge_classes.split()


# -- the tests ---------------------------------------------------------------------------------


def test_a_family_makes_and_reads_a_whole_book(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    sign_up(page, server.url, "mina-mum", screenshot="home-visitor.png")
    start_book(page, screenshot="new-book.png", child_screenshot="add-child.png")
    assert "with Sunny" in (page.locator(".book-head .eyebrow").text_content() or "")
    # The making page is not fetched again when a run ends: its socket sends the book.
    fetched_again: list[str] = []
    page.on(
        "request", lambda sent: fetched_again.append(sent.url) if sent.headers.get("hx-request") else None
    )
    # Pages are asked for and kept in place: the making page is never loaded again, so the one
    # socket it opened serves the whole book.
    sockets: list[str] = []
    page.on("websocket", lambda socket: sockets.append(socket.url))

    ideas = ["a dragon comes to tea", "they fly over the sea", "everyone has a big picnic"]
    for number, idea in enumerate(ideas[:2], start=1):
        make_page(page, number, idea)
        card = page.locator(f"#page-{number}")
        assert card.locator(".page-text").inner_text().strip()
        assert card.locator(".new-words li").count() >= 2
        expect_picture_shown(page, f"#page-{number} img")
    page.get_by_role("heading", name="Page 3 of 3").wait_for()
    assert page.locator("#next-question").inner_text().strip().endswith("?")
    # The tabs of the page just made stay, folded away under their own name.
    assert page.locator("#live summary").inner_text().strip() == "How page 2 was made"
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "making-page.png"), full_page=True)
    page.locator("#live summary").click()
    assert words(page.locator("#section-story-text").inner_text()) == words(
        page.locator("#page-2 .page-text").inner_text()
    )
    page.locator("#live").screenshot(path=str(ARTIFACTS / "how-page-2-was-made.png"))
    page.locator("#live summary").click()

    make_page(page, 3, ideas[2])
    page.get_by_role("link", name="Give your book a title").wait_for()
    page.wait_for_timeout(1500)  # time enough for a late fetch to show itself
    assert [url for url in fetched_again if url.endswith("/")] == [], fetched_again
    assert len(sockets) <= 1, sockets  # the socket opened with the page (before this listener) or one
    page.get_by_role("link", name="Give your book a title").click()
    page.get_by_role("heading", name="Give your book a title").wait_for()
    page.fill("#id_title", "Mina and the Dragon's Tea")
    page.screenshot(path=str(ARTIFACTS / "finish.png"), full_page=True)
    page.get_by_role("button", name="Finish the book").click()
    page.get_by_role("heading", name="Mina and the Dragon's Tea").wait_for()

    page.get_by_role("link", name="My books").click()
    page.get_by_role("link", name="Mina and the Dragon's Tea").click()
    cover = page.locator(".book-cover")
    assert "Mina" in cover.inner_text() and "Bori" in cover.inner_text()
    assert "Made with Sunny" in cover.inner_text()
    expect_picture_shown(page, ".book-cover img")
    page.screenshot(path=str(ARTIFACTS / "reader-cover.png"), full_page=True)

    page.get_by_role("link", name="Start reading →").click()
    for number in (1, 2, 3):
        page.locator(f"#page-{number}").wait_for()
        assert page.locator(f"#page-{number} .page-text").inner_text().strip()
        assert page.locator(f"#page-{number} .new-words li").count() >= 2
        expect_picture_shown(page, f"#page-{number} img")
        if number == 2:
            page.screenshot(path=str(ARTIFACTS / "reader-page.png"), full_page=True)
        if number < 3:
            page.get_by_role("link", name="Next page →").click()
    page.get_by_role("link", name="The end — back to my books").click()
    page.get_by_role("heading", name="My books").wait_for()
    expect_picture_shown(page, ".book-tile img")
    assert "Made with Sunny" in page.locator(".book-tile").inner_text()
    page.screenshot(path=str(ARTIFACTS / "my-books.png"), full_page=True)


def test_a_parent_deletes_a_child_with_their_book_in_progress(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    sign_up(page, server.url, "sunny-dad")
    start_book(page, pages=2)
    page.get_by_role("link", name="Children").click()
    page.get_by_role("heading", name="Your children").wait_for()
    page.screenshot(path=str(ARTIFACTS / "children.png"), full_page=True)
    page.get_by_role("link", name="Delete Sunny").click()
    page.get_by_role("heading", name="Delete Sunny's profile?").wait_for()
    assert "1 book in progress" in page.locator(".what-goes").inner_text()
    page.screenshot(path=str(ARTIFACTS / "delete-child.png"), full_page=True)
    page.get_by_role("button", name="Yes, delete Sunny and everything").click()
    page.get_by_text("Sunny's profile and 0 books were deleted.").wait_for()
    assert page.get_by_role("heading", name="No children yet").is_visible()
    page.get_by_role("link", name="My books").click()
    page.get_by_role("heading", name="My books").wait_for()
    assert page.get_by_role("link", name="Continue your book").count() == 0


def test_the_story_and_the_picture_fill_their_tabs_at_the_same_time(
    browser_page: Page, server: AppServer
) -> None:
    page = browser_page
    server.upstream.script("chat", chunk_delay=SLOW_CHUNKS, times=3)
    server.upstream.script("images", delay=SLOW_PICTURE)
    sign_up(page, server.url, "two-tabs-dad")
    start_book(page)
    ask_for_page(page, 1, "a dragon comes to tea")

    # Sample the page until the run ends: no clock decides what "at the same time" means.
    samples: list[dict[str, str]] = []
    pictured = False
    deadline = time.monotonic() + PAGE_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        state = live_state(page)
        samples.append(state)
        both = streaming(state["story"]) and streaming(state["picture"])
        if both and not pictured and len(words(state["storyText"])) >= 12:
            page.screenshot(path=str(ARTIFACTS / "live-two-tabs.png"), full_page=True)
            if UPDATE_DOCS or not DOCS_SCREENSHOT.exists():
                DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
                page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)
            pictured = True
        if "is-running" not in state["run"].split():
            break
        page.wait_for_timeout(40)

    together = [s for s in samples if streaming(s["picture"]) and streaming(s["story"])]
    assert together, "the story never streamed while the picture was being drawn"
    grew = {len(s["storyText"]) for s in together}
    assert len(grew) >= 2, "the story tab did not grow while the picture tab was streaming"
    # Once the story is written, the question and the new words stream while the picture is still drawn.
    after_story = [s for s in samples if "is-complete" in s["story"].split() and streaming(s["picture"])]
    assert any(streaming(s["question"]) or streaming(s["newWords"]) for s in after_story)
    page.locator("#page-1").wait_for()
    expect_picture_shown(page, "#page-1 img")


STORY_WHEN_WRITTEN = """() => {
  const badge = document.querySelector("#badge-story");
  if (!badge || !badge.classList.contains("is-complete")) return null;
  return {
    text: document.querySelector("#section-story-text").textContent,
    running: document.querySelector("#run-state").classList.contains("is-running"),
  };
}"""


def test_a_reload_mid_stream_shows_the_whole_story_once(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    server.upstream.script("chat", chunk_delay=SLOW_CHUNKS)
    server.upstream.script("images", delay=SLOW_PICTURE)
    sign_up(page, server.url, "reload-gran")
    start_book(page)
    ask_for_page(page, 1, "a snail wins a race")
    page.wait_for_function(
        """() => document.querySelector("#badge-story.is-streaming")
              && document.querySelector("#section-story-text").textContent.trim().split(/\\s+/).length >= 4"""
    )
    page.reload()
    before = live_state(page)
    assert streaming(before["story"]), "the reload came too late to land mid-stream"

    # Read the tab as the browser assembled it, the moment the story is written (the
    # picture is still being drawn, so the page has not been fetched again yet).
    seen = page.wait_for_function(STORY_WHEN_WRITTEN).json_value()
    assert seen["running"]
    page.locator("#page-1").wait_for()
    kept = page.locator("#page-1 .page-text").inner_text()
    assert words(seen["text"]) == words(kept)
    assert words(kept) == words(default_text(server.upstream.requests_to("chat")[0]))


def test_a_picture_that_failed_is_made_again_and_the_story_stays(
    browser_page: Page, server: AppServer
) -> None:
    page = browser_page
    server.upstream.script("images", status=500)
    sign_up(page, server.url, "retry-uncle")
    start_book(page)
    ask_for_page(page, 1, "the moon falls into the pond")

    page.locator("#badge-picture", has_text="Needs a retry").wait_for()
    # The page is fetched again once the run has ended: the child's words are back in the box.
    page.locator("#id_child_input").wait_for()
    assert page.locator("#id_child_input").input_value() == "the moon falls into the pond"
    story = page.locator("#section-story-text").inner_text()
    assert words(story)
    page.locator("label[for=tab-picture]").click()
    reason = page.locator("#section-picture-problem .problem-reason")
    assert "had a problem on its side (500)" in reason.inner_text()
    assert page.locator("#page-1").count() == 0
    page.screenshot(path=str(ARTIFACTS / "live-picture-failed.png"), full_page=True)

    page.get_by_role("button", name="Make the missing parts again").click()
    page.locator("#page-1").wait_for()
    expect_picture_shown(page, "#page-1 img")
    assert words(page.locator("#page-1 .page-text").inner_text()) == words(story)
    assert len(server.upstream.requests_to("images")) == 2
    assert len(server.upstream.requests_to("chat")) == 3  # nothing but the picture was asked again
    page.screenshot(path=str(ARTIFACTS / "live-picture-retried.png"), full_page=True)


def test_stopping_a_page_keeps_the_childs_words(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    server.upstream.script("chat", chunk_delay=0.3, times=3)
    sign_up(page, server.url, "stop-aunt")
    start_book(page)
    ask_for_page(page, 1, "a whale sings a song")
    page.locator("#badge-story.is-streaming").wait_for()

    page.get_by_role("button", name="Stop").click()
    page.locator("#run-state", has_text="was stopped").wait_for()
    page.locator("#id_child_input").wait_for()
    assert page.locator("#id_child_input").input_value() == "a whale sings a song"
    assert "was stopped" in page.locator("#run-state").inner_text()
    assert page.locator("#page-1").count() == 0
    assert page.get_by_role("button", name="Make page 1").is_enabled()
    page.screenshot(path=str(ARTIFACTS / "live-stopped.png"), full_page=True)


def test_the_live_tabs_fit_a_phone(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    a_page_under_way(page, server, "phone-mum", "a dragon comes to tea")

    for name in ("story", "picture", "question", "new_words"):
        tab = page.locator(f"label[for=tab-{name}]")
        box = tab.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390
        assert box["height"] >= 40  # a finger can hit it
        tab.click()
        assert page.locator(f"#panel-{name}").is_visible()
        if name == "picture":
            # Being drawn: the tab says so in its panel as well as on its badge.
            page.locator("#badge-picture.is-streaming").wait_for()
            page.locator("#panel-picture", has_text="Drawing…").wait_for()
            page.screenshot(path=str(ARTIFACTS / "live-phone.png"), full_page=True)
        if name in ("question", "new_words"):
            # The story (3 s at this pace) is still being written: the tab says what it waits
            # for rather than standing empty. Read together, so the two cannot disagree.
            story, panel = page.evaluate(
                f"[document.querySelector('#badge-story').className,"
                f" document.querySelector('#panel-{name}').innerText]"
            )
            assert "is-streaming" in story
            assert "This part starts once the story is written." in panel
            if name == "question":
                page.screenshot(path=str(ARTIFACTS / "live-phone-waiting.png"), full_page=True)
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0

    page.locator("#page-1").wait_for()
    expect_picture_shown(page, "#page-1 img")
    assert page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth") <= 0
    page.screenshot(path=str(ARTIFACTS / "making-page-phone.png"), full_page=True)


# A resync as a socket makes one after a reconnect: the page tells the socket it was drawn at
# a frame it never saw, and the socket sends the run's snapshot, #live drawn whole again.
ASK_FOR_THE_SNAPSHOT = """() => {
  window.liveRedrawn = false;
  document.querySelector("#making").addEventListener("htmx:oobAfterSwap", function (event) {
    if (event.detail.target && event.detail.target.id === "live") window.liveRedrawn = true;
  });
  const ask = document.createElement("div");
  ask.hidden = true;
  ask.setAttribute("ws-send", "");
  ask.setAttribute("hx-trigger", "load");
  ask.setAttribute("hx-vals", '{"drawn_at": -1}');
  document.querySelector("#book").appendChild(ask);
  htmx.process(ask);
}"""


def test_the_tab_a_family_chose_stays_open_when_the_tabs_are_drawn_again(
    browser_page: Page, server: AppServer
) -> None:
    page = browser_page
    a_page_under_way(page, server, "tab-keeper", "a boat made of leaves")
    page.locator("label[for=tab-picture]").click()
    assert page.locator("#panel-picture").is_visible()

    page.evaluate(ASK_FOR_THE_SNAPSHOT)
    page.wait_for_function("window.liveRedrawn === true")
    # Drawn afresh, the tabs would open at the story, still being written; the family's choice wins.
    assert page.locator("#badge-story.is-streaming").count() == 1
    assert page.locator("#tab-picture").is_checked()
    assert page.locator("#panel-picture").is_visible()
    assert not page.locator("#panel-story").is_visible()
    page.locator("#page-1").wait_for()


def test_the_app_needs_nothing_from_the_internet(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(server.url + "/")
    page.wait_for_load_state("networkidle")
    assert requested
    assert all(url.startswith(server.url) for url in requested), requested
    assert page.evaluate("typeof window.htmx") == "object"
