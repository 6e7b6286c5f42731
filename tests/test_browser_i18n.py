"""The interface in Korean and reading aloud, in headless Chromium against a real Daphne.

Reuses the browser harness of ``test_browser`` (its own Daphne for this module). Speech is
checked by installing a stub ``window.speechSynthesis`` before any page script runs: the
test sees each utterance's text, language and voice, as a real browser would speak them.
"""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page

from tests import test_browser
from tests.test_browser import (
    ARTIFACTS,
    PASSWORD,
    AppServer,
    expect_picture_shown,
    make_page,
    sign_up,
    start_book,
)

# The shared harness's fixtures, used here too (this module gets a Daphne of its own).
app_server = test_browser.app_server
server = test_browser.server
browser_page = test_browser.browser_page

pytestmark = [pytest.mark.browser]

SPEECH_STUB = """
(() => {
  window.__spoken = [];
  window.__cancelled = 0;
  const voices = [
    { name: "Stub English", lang: "en-US", default: true },
    { name: "Stub Korean", lang: "ko-KR", default: false },
  ];
  window.SpeechSynthesisUtterance = function (text) {
    this.text = text; this.lang = ""; this.voice = null; this.onend = null; this.onerror = null;
  };
  const synth = {
    speaking: false,
    getVoices: () => voices,
    speak: (utterance) => {
      const voice = utterance.voice && utterance.voice.name;
      window.__spoken.push({ text: utterance.text, lang: utterance.lang, voice: voice });
      window.__lastUtterance = utterance;
    },
    cancel: () => { window.__cancelled += 1; },
  };
  Object.defineProperty(window, "speechSynthesis", { value: synth, configurable: true });
})();
"""

NO_SPEECH = """
Object.defineProperty(window, "speechSynthesis", { value: undefined, configurable: true });
"""


def spoken(page: Page) -> list[dict[str, Any]]:
    utterances: list[dict[str, Any]] = page.evaluate("window.__spoken")
    return utterances


def squashed(text: str) -> str:
    return " ".join(text.split())


def test_a_korean_family_makes_a_page(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    page.context.add_init_script(SPEECH_STUB)
    server.upstream.script("chat", chunk_delay=0.05, times=3)
    server.upstream.script("images", delay=1.5)
    page.goto(server.url + "/")
    page.get_by_role("button", name="한국어").click()
    page.get_by_role("heading", name="한 장씩 한 장씩, 함께 그림책을 만들어요.").wait_for()
    assert page.locator("html").get_attribute("lang") == "ko"
    page.get_by_role("link", name="가입하기 — 무료예요").click()
    page.fill("#id_username", "mina-eomma")
    page.fill("#id_password1", PASSWORD)
    page.fill("#id_password2", PASSWORD)
    page.get_by_role("button", name="가입하기").click()
    page.get_by_role("heading", name="안녕하세요, mina-eomma 님!").wait_for()

    page.get_by_role("link", name="책 시작하기").click()
    page.get_by_role("heading", name="먼저, 누구와 함께 만드나요?").wait_for()
    page.fill("#id_nickname", "하늘")
    page.get_by_label("6–8살").check()
    page.get_by_role("button", name="이 아이 추가하기").click()
    page.get_by_role("heading", name="이야기에 누가 나올까요?").wait_for()
    page.fill("#id_characters-0-name", "미나")
    page.fill("#id_characters-0-description", "빨간 우산을 든 여자아이")
    page.fill("#id_page_count", "2")
    assert page.locator("#id_language_1").is_checked()  # a Korean interface starts a Korean story
    page.get_by_role("button", name="책 시작하기").click()
    page.get_by_role("heading", name="2쪽 중 1쪽").wait_for()

    page.fill("#id_child_input", "용이 차를 마시러 와요")
    with page.expect_response(lambda answer: answer.url.endswith("/pages/1/make")):
        page.get_by_role("button", name="1쪽 만들기").click()
    # The tabs and their badges, filled over the socket, are Korean too.
    page.locator("#badge-story.is-streaming").wait_for()
    assert page.locator("#badge-story").inner_text().strip() == "만드는 중"
    tab_names = [name.strip() for name in page.locator(".tab-name").all_inner_texts()]
    assert tab_names == ["이야기", "그림", "질문", "새로운 낱말"]
    assert "1쪽을 만드는 중…" in page.locator("#run-state").inner_text()
    page.screenshot(path=str(ARTIFACTS / "korean-making-page.png"), full_page=True)
    page.locator("#page-1").wait_for()
    page.locator("#live summary").click()
    assert page.locator("#badge-story").inner_text().strip() == "완성"
    assert page.locator("#status-picture .status-value").inner_text().strip() == "완성"
    assert page.locator("#live summary").inner_text().strip() == "1쪽을 만든 과정"
    page.get_by_role("heading", name="2쪽 중 2쪽").wait_for()
    expect_picture_shown(page, "#page-1 img")
    page.screenshot(path=str(ARTIFACTS / "korean-page-made.png"), full_page=True)

    # The finished page reads itself aloud in the story's language, with a Korean voice.
    button = page.locator("#page-1 .read-aloud")
    assert button.inner_text().strip() == "소리 내어 읽기"
    button.click()
    text = page.locator("#page-1 .page-text").inner_text().strip()
    question = page.locator("#page-1 .page-question").inner_text().strip()
    [utterance] = spoken(page)
    assert utterance["lang"] == "ko-KR" and utterance["voice"] == "Stub Korean"
    assert squashed(utterance["text"]) == squashed(f"{text} {question}")
    assert button.inner_text().strip() == "읽기 멈추기"
    button.click()  # stop
    assert button.inner_text().strip() == "소리 내어 읽기"
    assert page.evaluate("window.__cancelled") >= 2
    assert len(spoken(page)) == 1

    # Back to English from the header: the same book, the interface changes, the story does not.
    page.get_by_role("button", name="English").click()
    page.get_by_role("heading", name="Page 2 of 2").wait_for()
    assert page.locator("#page-1 .page-text").inner_text().strip() == text


def test_an_english_story_is_read_in_english_from_the_reader(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    page.context.add_init_script(SPEECH_STUB)
    sign_up(page, server.url, "reader-dad")
    start_book(page, pages=2)
    make_page(page, 1, "a dragon comes to tea")
    make_page(page, 2, "they all have a picnic")
    page.get_by_role("link", name="Give your book a title").click()
    page.fill("#id_title", "The Dragon's Picnic")
    page.get_by_role("button", name="Finish the book").click()
    page.get_by_role("heading", name="The Dragon's Picnic").wait_for()
    assert page.get_by_role("link", name="Download as PDF").is_visible()
    page.get_by_role("link", name="Start reading →").click()
    page.locator("#page-1").wait_for()
    page.screenshot(path=str(ARTIFACTS / "reader-read-aloud.png"), full_page=True)
    page.locator("#page-1 .read-aloud").click()
    [utterance] = spoken(page)
    assert utterance["lang"] == "en-US" and utterance["voice"] == "Stub English"
    assert squashed(page.locator("#page-1 .page-text").inner_text()) in squashed(utterance["text"])
    # The browser says it has finished: the button offers to read again.
    page.evaluate("window.__lastUtterance.onend()")
    assert page.locator("#page-1 .read-aloud").inner_text().strip() == "Read aloud"
    # Turning the page stops the voice (the browser must not keep reading the old page).
    page.locator("#page-1 .read-aloud").click()
    page.get_by_role("link", name="Next page →").click()
    page.locator("#page-2").wait_for()
    page.locator("#page-2 .read-aloud").click()
    assert squashed(page.locator("#page-2 .page-text").inner_text()) in squashed(spoken(page)[-1]["text"])

    with page.expect_download() as download_info:
        page.goto(page.url.split("?")[0])
        page.get_by_role("link", name="Download as PDF").click()
    download = download_info.value
    assert download.suggested_filename == "the-dragons-picnic.pdf"


def test_without_speech_synthesis_the_button_stays_hidden(browser_page: Page, server: AppServer) -> None:
    page = browser_page
    page.context.add_init_script(NO_SPEECH)
    sign_up(page, server.url, "quiet-mum")
    start_book(page, pages=2)
    make_page(page, 1, "a dragon comes to tea")
    assert page.locator("#page-1 .read-aloud").count() == 1
    assert not page.locator("#page-1 .read-aloud").is_visible()
    assert page.evaluate("document.documentElement.classList.contains('can-speak')") is False
