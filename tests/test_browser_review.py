"""A book leaves its family in a real browser: submitted, approved by a reviewer, read by link.

Same harness as ``test_browser.py`` (Daphne in its own process on services of its own,
the storyteller on the loopback fake OpenAI server, Debian's headless Chromium); three
browser contexts stand for three people: the parent, the reviewer, and someone who was
only sent the link and has no account.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests import test_browser as harness
from tests.test_browser import (
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    PAGE_TIMEOUT_MS,
    AppServer,
    _manage,
    expect_picture_shown,
    make_page,
    sign_up,
    start_book,
)

pytestmark = [pytest.mark.browser]

# The harness's fixtures: this module gets a Daphne server of its own, started the same way.
app_server = harness.app_server
server = harness.server

TITLE = "Mina and the Moon Kite"


@pytest.fixture
def browser(server: AppServer, request: pytest.FixtureRequest) -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed: scripts/bootstrap --test installs it")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class People:
    """One browser context per person, so nobody shares a session with anybody else."""

    def __init__(self, browser: Browser) -> None:
        self.browser = browser
        self.contexts: dict[str, BrowserContext] = {}
        self.pages: dict[str, Page] = {}

    def page(self, who: str) -> Page:
        if who not in self.pages:
            context = self.browser.new_context(viewport={"width": 1280, "height": 900})
            page = context.new_page()
            page.set_default_timeout(PAGE_TIMEOUT_MS)
            self.contexts[who], self.pages[who] = context, page
        return self.pages[who]

    def screenshots_of_failure(self, name: str) -> None:
        for who, page in self.pages.items():
            page.screenshot(path=str(ARTIFACTS / f"failed-{name}-{who}.png"), full_page=True)


@pytest.fixture
def people(browser: Browser, request: pytest.FixtureRequest) -> Iterator[People]:
    failed_before = request.session.testsfailed
    everyone = People(browser)
    try:
        yield everyone
    finally:
        if request.session.testsfailed > failed_before:
            everyone.screenshots_of_failure(request.node.name)
        for context in everyone.contexts.values():
            context.close()


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def make_a_short_book(page: Page) -> None:
    start_book(page, pages=2)
    make_page(page, 1, "a kite flies up to the moon")
    make_page(page, 2, "the moon sends the kite home")
    page.get_by_role("link", name="Give your book a title").click()
    page.fill("#id_title", TITLE)
    page.get_by_role("button", name="Finish the book").click()
    page.get_by_role("heading", name=TITLE).wait_for()


def test_a_book_is_submitted_approved_and_read_by_link_without_an_account(
    people: People, server: AppServer
) -> None:
    base = server.url

    # The parent makes a short book and asks for it to be shared.
    parent = people.page("parent")
    sign_up(parent, base, "kite-mum")
    make_a_short_book(parent)
    assert "Private to your family" in parent.locator(".sharing-panel").inner_text()
    shot(parent, "review-reader-cover.png")
    parent.get_by_role("link", name="Share this book").click()
    parent.fill("#id_note", "For Grandma, who lives far away.")
    parent.get_by_role("button", name="Ask for a review").click()
    parent.locator("#sharing[data-state=submitted]").wait_for()
    assert "Waiting for review" in parent.locator(".sharing-state").inner_text()
    shot(parent, "review-submitted.png")

    # A reviewer (made one with the management command) finds it in the queue and reads it all.
    reviewer = people.page("reviewer")
    sign_up(reviewer, base, "rita-reviewer")
    assert reviewer.get_by_role("link", name="Review").count() == 0
    _manage(server.env, "make_reviewer", "rita-reviewer")
    reviewer.reload()
    reviewer.get_by_role("link", name="Review", exact=True).click()
    reviewer.get_by_role("heading", name="Review queue").wait_for()
    row = reviewer.locator("#queue tbody tr", has_text=TITLE)
    assert row.locator(".count-pages").inner_text() == "2"
    assert row.locator(".count-inputs").inner_text() == "2"
    assert "For Grandma" in row.inner_text()
    shot(reviewer, "review-queue.png")
    row.get_by_role("link", name=TITLE).click()
    reviewer.get_by_role("heading", name=TITLE).wait_for()
    for number in (1, 2):
        assert reviewer.locator(f"#page-{number} .page-text").inner_text().strip()
        expect_picture_shown(reviewer, f"#page-{number} img")
    assert "a kite flies up to the moon" in reviewer.locator("#page-1-input").inner_text()
    assert reviewer.locator("#moderation-flags").is_visible()
    reviewer.evaluate("window.scrollTo(0, 0)")
    shot(reviewer, "review-page.png")
    reviewer.fill("#id_approved-note", "A lovely story, ready to share.")
    reviewer.get_by_role("button", name="Approve").click()
    reviewer.get_by_role("heading", name="Review queue").wait_for()
    assert "is approved" in reviewer.locator(".messages").inner_text()
    assert reviewer.locator("#queue tbody tr", has_text=TITLE).count() == 0

    # The parent sees the approval and makes the link.
    parent.reload()
    parent.locator("#sharing[data-state=approved]").wait_for()
    assert "A lovely story, ready to share." in parent.locator("#sharing").inner_text()
    parent.get_by_role("button", name="Make a share link").click()
    link = parent.locator("#share-link").input_value()
    assert link.startswith(f"{base}/shared/")
    shot(parent, "review-share-link.png")

    # Someone with no account opens the link in a fresh browser context.
    visitor = people.page("visitor")
    visitor.goto(link)
    visitor.get_by_role("heading", name=TITLE).wait_for()
    assert visitor.get_by_role("link", name="Log in").count() == 1  # nobody is signed in
    expect_picture_shown(visitor, ".book-cover img")
    shot(visitor, "shared-cover.png")
    visitor.get_by_role("link", name="Start reading →").click()
    for number in (1, 2):
        visitor.locator(f"#page-{number}").wait_for()
        assert visitor.locator(f"#page-{number} .page-text").inner_text().strip()
        expect_picture_shown(visitor, f"#page-{number} img")
        if number == 1:
            shot(visitor, "shared-page.png")
            visitor.get_by_role("link", name="Next page →").click()
    # Read-only: no form but the interface-language switch (and nobody to log out).
    assert visitor.locator("main form").count() == 0
    assert visitor.get_by_role("button", name="Log out").count() == 0

    # The parent turns the link off: the same address now opens nothing.
    parent.get_by_role("button", name="Turn the link off").click()
    parent.get_by_text("There is no share link yet.").wait_for()
    answer: Any = visitor.goto(link)
    assert answer is not None and answer.status == 404
    assert TITLE not in visitor.content()
    assert "This link does not open a book" in visitor.content()
    shot(visitor, "shared-revoked.png")
