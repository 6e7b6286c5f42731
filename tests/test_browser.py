"""A family makes a whole book in a real browser: Playwright driving Debian's headless Chromium.

The app runs in pytest-django's live server (threaded WSGI; the async views run through
Django's async adapter) on the test database, cache and picture store of this run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

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
ARTIFACTS = ROOT / "test-artifacts"
DOCS_SCREENSHOT = ROOT / "docs" / "screenshot.png"
# Every run tells a different story, so the README's picture is only retaken when asked
# (or missing): a test run should not leave the working tree changed.
UPDATE_DOCS = os.environ.get("LW_UPDATE_DOCS_SCREENSHOT") == "1"
PAGE_TIMEOUT_MS = 30_000


@pytest.fixture
def browser_page(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: scripts/bootstrap --test installs it")
    # Playwright's sync API keeps an event loop in this thread; the test's own database
    # work (fixtures, teardown) is still plain synchronous code.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def expect_picture_shown(page: Any, selector: str) -> None:
    """The <img> really loaded (a broken or forbidden picture has a natural width of 0)."""
    image = page.locator(selector)
    image.scroll_into_view_if_needed()
    image.evaluate("img => img.decode()")
    assert image.evaluate("img => img.naturalWidth") > 0


def sign_up(page: Any, base_url: str, screenshot: str = "") -> None:
    page.goto(base_url + "/")
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.get_by_role("link", name="Sign up — it's free").click()
    page.fill("#id_username", "mina-mum")
    page.fill("#id_password1", "a-long-family-password-42")
    page.fill("#id_password2", "a-long-family-password-42")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("heading", name="Hello, mina-mum!").wait_for()


def start_book(page: Any, screenshot: str = "") -> None:
    page.get_by_role("link", name="Start a book").click()
    page.fill("#id_characters-0-name", "Mina")
    page.fill("#id_characters-0-description", "a girl with a red umbrella")
    page.fill("#id_characters-1-name", "Bori")
    page.fill("#id_characters-1-description", "a sleepy orange cat")
    page.fill("#id_page_count", "3")
    if screenshot:
        page.screenshot(path=str(ARTIFACTS / screenshot), full_page=True)
    page.get_by_role("button", name="Start the book").click()
    page.get_by_role("heading", name="Page 1 of 3").wait_for()


def make_page(page: Any, number: int, child_input: str) -> None:
    page.fill("#id_child_input", child_input)
    page.get_by_role("button", name=f"Make page {number}").click()
    page.wait_for_url(re.compile(rf"(#page-{number}|/finish)$"))


def test_a_family_makes_and_reads_a_whole_book(browser_page: Any, live_server: Any) -> None:
    page = browser_page
    ARTIFACTS.mkdir(exist_ok=True)
    sign_up(page, live_server.url, screenshot="home-visitor.png")
    start_book(page, screenshot="new-book.png")

    ideas = ["a dragon comes to tea", "they fly over the sea", "everyone has a big picnic"]
    for number, idea in enumerate(ideas[:2], start=1):
        make_page(page, number, idea)
        card = page.locator(f"#page-{number}")
        assert card.locator(".page-text").inner_text().strip()
        expect_picture_shown(page, f"#page-{number} img")
    page.get_by_role("heading", name="Page 3 of 3").wait_for()
    assert page.locator("#next-question").inner_text().strip().endswith("?")
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(ARTIFACTS / "making-page.png"), full_page=True)
    if UPDATE_DOCS or not DOCS_SCREENSHOT.exists():
        DOCS_SCREENSHOT.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(DOCS_SCREENSHOT), full_page=True)

    make_page(page, 3, ideas[2])
    page.get_by_role("heading", name="Give your book a title").wait_for()
    page.fill("#id_title", "Mina and the Dragon's Tea")
    page.screenshot(path=str(ARTIFACTS / "finish.png"), full_page=True)
    page.get_by_role("button", name="Finish the book").click()
    page.get_by_role("heading", name="Mina and the Dragon's Tea").wait_for()

    page.get_by_role("link", name="My books").click()
    page.get_by_role("link", name="Mina and the Dragon's Tea").click()
    cover = page.locator(".book-cover")
    assert "Mina" in cover.inner_text() and "Bori" in cover.inner_text()
    expect_picture_shown(page, ".book-cover img")
    page.screenshot(path=str(ARTIFACTS / "reader-cover.png"), full_page=True)

    page.get_by_role("link", name="Start reading →").click()
    for number in (1, 2, 3):
        page.locator(f"#page-{number}").wait_for()
        assert page.locator(f"#page-{number} .page-text").inner_text().strip()
        expect_picture_shown(page, f"#page-{number} img")
        if number == 2:
            page.screenshot(path=str(ARTIFACTS / "reader-page.png"), full_page=True)
        if number < 3:
            page.get_by_role("link", name="Next page →").click()
    page.get_by_role("link", name="The end — back to my books").click()
    page.get_by_role("heading", name="My books").wait_for()
    expect_picture_shown(page, ".book-tile img")
    page.screenshot(path=str(ARTIFACTS / "my-books.png"), full_page=True)


def test_the_making_page_fits_a_phone(browser_page: Any, live_server: Any) -> None:
    page = browser_page
    page.set_viewport_size({"width": 390, "height": 844})
    ARTIFACTS.mkdir(exist_ok=True)
    sign_up(page, live_server.url)
    start_book(page)
    make_page(page, 1, "a dragon comes to tea")
    expect_picture_shown(page, "#page-1 img")
    overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
    assert overflow <= 0
    page.screenshot(path=str(ARTIFACTS / "making-page-phone.png"), full_page=True)


def test_the_app_needs_nothing_from_the_internet(browser_page: Any, live_server: Any) -> None:
    page = browser_page
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(live_server.url + "/")
    page.wait_for_load_state("networkidle")
    assert requested
    assert all(url.startswith(live_server.url) for url in requested), requested
    assert page.evaluate("typeof window.htmx") == "object"
