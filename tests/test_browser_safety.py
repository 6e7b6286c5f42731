"""Content safety in a real browser: the same Daphne, fake OpenAI server and Chromium as
``test_browser.py``, with the OpenAI moderator scripted to flag one text."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page

from tests import test_browser as harness
from tests.test_browser import ARTIFACTS, AppServer, ask_for_page, sign_up, start_book, words

# The browser harness's fixtures: one Daphne for this module, Chromium per test.
app_server = harness.app_server
server = harness.server
browser_page = harness.browser_page

pytestmark = [pytest.mark.browser]


def test_an_unkind_idea_gets_a_kind_sentence_and_keeps_the_words(
    browser_page: Page, server: AppServer
) -> None:
    page = browser_page
    server.upstream.script("moderations", when="knight to pieces", flagged=["violence", "violence/graphic"])
    sign_up(page, server.url, "kind-aunt")
    start_book(page)

    page.fill("#id_child_input", "the dragon tears the knight to pieces")
    with page.expect_response(lambda answer: answer.url.endswith("/pages/1/make")) as answer:
        page.get_by_role("button", name="Make page 1").click()

    assert answer.value.status == 422
    page.locator(".field-error").wait_for()  # the book is swapped in place, the sentence in it
    error = page.locator(".field-error")
    assert error.inner_text() == "Let's think of a kinder idea for this page."
    assert page.locator("#id_child_input").input_value() == "the dragon tears the knight to pieces"
    assert page.locator("#run-state").count() == 0  # nothing was started
    assert server.upstream.requests_to("chat") == [] and server.upstream.requests_to("images") == []
    page.screenshot(path=str(ARTIFACTS / "safety-kinder-idea.png"), full_page=True)


def test_a_flagged_story_asks_for_another_idea_and_is_made_again(
    browser_page: Page, server: AppServer
) -> None:
    page = browser_page
    server.upstream.script(
        "chat", when="<child_idea>", text="Mina met a troll. The troll was a mean, nasty brute."
    )
    server.upstream.script("moderations", when="nasty brute", flagged=["harassment"])
    sign_up(page, server.url, "retry-grandpa")
    start_book(page)
    ask_for_page(page, 1, "a troll comes to tea")

    page.locator("#badge-story", has_text="Needs a retry").wait_for()
    page.locator("#id_child_input").wait_for()
    assert page.locator("#id_child_input").input_value() == "a troll comes to tea"
    assert "nasty" not in page.locator("#section-story-text").inner_text()
    reason = page.locator("#section-story-problem .problem-reason")
    assert reason.inner_text() == "Let's try another idea"
    page.screenshot(path=str(ARTIFACTS / "safety-try-another-idea.png"), full_page=True)

    page.locator("#section-story-problem").get_by_role("button", name="Make the story again").click()
    page.locator("#page-1").wait_for()
    assert words(page.locator("#page-1 .page-text").inner_text())
    assert "nasty" not in page.locator("#page-1 .page-text").inner_text()
