"""Two languages: English and Korean, the Korean catalogue complete, a switcher that remembers.

The interface language (Django's translation framework) is independent of each book's
story language: a Korean interface can make an English story and the other way round.
"""

from __future__ import annotations

import html
import re
import shutil
from pathlib import Path
from typing import Any

import polib
import pytest
from django.conf import settings as django_settings
from django.core.management import call_command
from django.test import AsyncClient, Client
from django.urls import reverse
from django.utils import translation

from books import drafts
from books.domain import IllegalMove, InvalidBook, clean_title
from streaming.consumers import language_of
from streaming.sections import SectionStatus
from tests.people import first_child
from tests.test_views import amake_page, astart_book, current_draft, new_book_data

ROOT = Path(__file__).resolve().parents[1]
KO_PO = ROOT / "locale" / "ko" / "LC_MESSAGES" / "django.po"
KO_MO = KO_PO.with_suffix(".mo")
# Every package of the project (each app, the settings) and the templates; not the tests.
SOURCES = sorted(
    {path.parent.name for path in ROOT.glob("*/__init__.py")} - {"tests", "bench"} | {"templates"}
)


@pytest.fixture(autouse=True)
def back_to_english() -> Any:
    """The test client activates a request's language in this thread; the next test starts afresh."""
    yield
    translation.deactivate()


def korean(client: Client) -> Client:
    """Switch the client's interface to Korean the way the header's switcher does."""
    response = client.post(reverse("set_language"), {"language": "ko", "next": "/"})
    assert response.status_code == 302
    return client


def hangul(text: str) -> bool:
    return any("\uac00" <= char <= "\ud7a3" for char in text)


# -- the catalogue ------------------------------------------------------------------------------


def test_every_korean_message_is_translated_and_none_is_fuzzy() -> None:
    catalogue = polib.pofile(str(KO_PO))
    assert len(catalogue) > 200
    assert [entry.msgid for entry in catalogue.untranslated_entries()] == []
    assert [entry.msgid for entry in catalogue.fuzzy_entries()] == []
    assert not catalogue.metadata_is_fuzzy
    for entry in catalogue:
        translated = [entry.msgstr] if not entry.msgid_plural else list(entry.msgstr_plural.values())
        assert all(text.strip() or not entry.msgid.strip() for text in translated), entry.msgid


@pytest.mark.skipif(shutil.which("xgettext") is None, reason="xgettext (Debian's gettext) is not installed")
def test_every_string_in_the_code_is_in_the_korean_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """Extract the messages afresh from a copy of the code: a string wrapped but never
    translated (someone added it after the last makemessages) fails here."""
    for name in SOURCES:
        shutil.copytree(ROOT / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "locale").mkdir()
    monkeypatch.chdir(tmp_path)
    settings.LOCALE_PATHS = [tmp_path / "locale"]
    call_command("makemessages", locale=["ko"], verbosity=0)
    fresh = polib.pofile(str(tmp_path / "locale" / "ko" / "LC_MESSAGES" / "django.po"))
    kept = {(entry.msgctxt, entry.msgid) for entry in polib.pofile(str(KO_PO)) if entry.translated()}
    missing = sorted(entry.msgid for entry in fresh if (entry.msgctxt, entry.msgid) not in kept)
    assert missing == [], "run makemessages -l ko and translate these"


def test_the_compiled_catalogue_is_the_po_file() -> None:
    """The .mo is committed (a fresh machine needs no gettext tools): it must say what the .po says."""
    source = {(e.msgctxt, e.msgid): (e.msgstr, e.msgstr_plural) for e in polib.pofile(str(KO_PO)) if e.msgid}
    compiled = {
        (e.msgctxt, e.msgid): (e.msgstr, e.msgstr_plural) for e in polib.mofile(str(KO_MO)) if e.msgid
    }
    assert compiled == source


# -- choosing the interface language ---------------------------------------------------------------


def test_the_interface_is_english_by_default(client: Client) -> None:
    page = client.get("/").content.decode()
    assert '<html lang="en">' in page
    assert "Make a picture book together, one page at a time." in page
    assert 'value="ko"' in page and "한국어" in page  # the switcher offers the other language


def test_a_browser_asking_for_korean_gets_korean(client: Client) -> None:
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="ko-KR,ko;q=0.9,en;q=0.5").content.decode()
    assert '<html lang="ko">' in page
    assert "한 장씩 한 장씩, 함께 그림책을 만들어요." in page


def test_a_visitor_switches_to_korean_and_the_choice_is_remembered(client: Client) -> None:
    response = client.post(reverse("set_language"), {"language": "ko", "next": "/accounts/login/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/"
    assert client.cookies[django_settings.LANGUAGE_COOKIE_NAME].value == "ko"
    page = client.get("/accounts/login/").content.decode()
    assert '<html lang="ko">' in page
    assert "다시 만나서 반가워요" in page
    assert "Welcome back" not in page
    # ...and back again, from any page, even with a Korean-speaking browser.
    client.post(reverse("set_language"), {"language": "en", "next": "/"})
    page = client.get("/", HTTP_ACCEPT_LANGUAGE="ko").content.decode()
    assert "Make a picture book together, one page at a time." in page


def test_a_signed_in_parent_sees_korean_everywhere(parent_client: Client, parent: Any) -> None:
    korean(parent_client)
    home = parent_client.get("/").content.decode()
    assert "안녕하세요, ada 님!" in home
    assert "새 이야기를 만들어 볼까요?" in home
    form = parent_client.get(reverse("books:new")).content.decode()
    assert "이야기에 누가 나올까요?" in form
    assert "참나무 할아버지" in form  # even the example characters
    # A new story starts in the interface's language, and English stays one click away.
    assert 'value="ko" id="id_language_1" required checked' in form
    assert 'value="en" id="id_language_0" required>' in form


def test_the_korean_admin_names_every_app_and_model_in_korean(admin_client: Client) -> None:
    page = html.unescape(korean(admin_client).get(reverse("admin:index")).content.decode())
    apps = re.findall(r'<a href="[^"]+" class="section"[^>]*>([^<]+)</a>', page)
    models = re.findall(r'<th scope="row" id="[^"]+">\s*<a href="[^"]+">([^<]+)</a>', page)
    assert len(apps) >= 6 and len(models) >= 10
    assert [name for name in apps + models if not hangul(name)] == []
    assert {"책", "책 검토", "결정", "공유 링크", "아이들"} <= set(models)
    assert not re.search("[\uac00-\ud7a3]s<", page)  # no English plural "s" after a Korean name


def test_every_app_of_the_project_has_a_korean_name_even_one_without_models() -> None:
    from django.apps import apps

    ours = [config for config in apps.get_app_configs() if Path(config.path).parent == ROOT]
    with translation.override("ko"):
        names = {config.label: str(config.verbose_name) for config in ours}
    assert names.keys() >= {"books", "streaming", "usage", "safety", "reviews", "families"}
    assert [label for label, name in names.items() if not hangul(name)] == []


def test_django_s_own_form_errors_are_korean_too(client: Client) -> None:
    korean(client)
    page = client.post(reverse("signup"), {"username": "", "password1": "", "password2": ""}).content.decode()
    assert "필수 항목입니다." in page


def test_form_errors_are_in_the_interface_language(parent_client: Client, parent: Any) -> None:
    korean(parent_client)
    response = parent_client.post(
        reverse("books:new"), new_book_data(page_count=40, child=first_child(parent))
    )
    assert response.status_code == 400
    assert "책은 많아야 16쪽까지 만들 수 있어요." in response.content.decode()


# -- the domain's sentences -------------------------------------------------------------------------


def test_a_domain_sentence_is_english_for_an_english_reader() -> None:
    with translation.override("en"):
        with pytest.raises(InvalidBook) as refused:
            clean_title("x" * 200)
        assert str(refused.value) == "A title can be at most 80 characters long."


def test_a_domain_sentence_is_translated_when_shown_not_when_raised() -> None:
    with translation.override("en"), pytest.raises(InvalidBook) as refused:
        clean_title("x" * 200)
    with translation.override("ko"):
        assert str(refused.value) == "제목은 80자까지 쓸 수 있어요."
    error = IllegalMove("Page %(number)d is not the next page of this book.", number=3)
    with translation.override("ko"):
        assert str(error) == "3쪽은 이 책의 다음 페이지가 아니에요."


def test_a_refused_move_is_explained_in_korean(parent_client: Client, parent: Any) -> None:
    korean(parent_client)
    parent_client.post(reverse("books:new"), new_book_data(page_count=3, child=first_child(parent)))
    draft = drafts.current(parent.pk)
    assert draft is not None
    response = parent_client.post(reverse("books:finish", args=[draft.draft_id]), {"title": "Too soon"})
    assert response.status_code == 409
    page = response.content.decode()
    assert "아직은 안 돼요" in page
    assert "제목을 붙이기 전에 3쪽을 더 만들어야 해요." in page
    assert "책으로 돌아가기" in page


# -- the interface language is not the story's language ----------------------------------------------


def test_a_korean_interface_makes_an_english_story(parent_client: Client, parent: Any) -> None:
    korean(parent_client)
    response = parent_client.post(
        reverse("books:new"), new_book_data(page_count=2, language="en", child=first_child(parent))
    )
    assert response.status_code == 302
    draft = drafts.current(parent.pk)
    assert draft is not None and draft.language.value == "en"
    page = parent_client.get(response["Location"]).content.decode()
    assert "2쪽 중 1쪽" in page  # the interface speaks Korean...
    assert "Sunny하고 함께 만들고 있는 책 · 영어" in page  # ...about a story told in English
    assert 'lang="en"' in page


def test_an_english_interface_makes_a_korean_story(parent_client: Client, parent: Any) -> None:
    response = parent_client.post(
        reverse("books:new"),
        new_book_data(
            characters=[("미나", "빨간 우산")], page_count=2, language="ko", child=first_child(parent)
        ),
    )
    assert response.status_code == 302
    draft = drafts.current(parent.pk)
    assert draft is not None and draft.language.value == "ko"
    page = parent_client.get(response["Location"]).content.decode()
    assert "Page 1 of 2" in page and "Your book in progress with Sunny · Korean (한국어)" in page
    assert 'lang="ko"' in page


# -- the live tabs' socket speaks the page's language ------------------------------------------------


@pytest.mark.parametrize(
    ("cookies", "accept", "expected"),
    [
        ({}, b"", "en"),
        ({"django_language": "ko"}, b"en-US,en", "ko"),
        ({}, b"ko-KR,ko;q=0.9", "ko"),
        ({"django_language": "xx"}, b"fr, ko;q=0.5", "ko"),
        ({}, b"fr", "en"),
    ],
)
def test_the_socket_picks_the_language_as_the_page_does(
    cookies: dict[str, str], accept: bytes, expected: str
) -> None:
    scope = {"cookies": cookies, "headers": [(b"accept-language", accept)] if accept else []}
    assert language_of(scope) == expected


def test_badges_are_translated_when_rendered() -> None:
    with translation.override("ko"):
        assert [status.label for status in SectionStatus] == [
            "시작 전",
            "만드는 중",
            "완성",
            "다시 해야 해요",
        ]
    with translation.override("en"):
        assert SectionStatus.STREAMING.label == "Streaming"


@pytest.mark.django_db(transaction=True)
async def test_a_page_that_fails_says_so_in_the_language_of_whoever_made_it(
    parent: Any, settings: Any
) -> None:
    """The reason is written while the page is made, in a run of its own: it keeps the
    language of the request that started it."""
    client = AsyncClient()
    await client.aforce_login(parent)
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "ko"
    draft_id = await astart_book(client, parent, page_count=2)
    settings.LITTLEWRITER = {**settings.LITTLEWRITER, "STORY_WRITER": "tests.test_views.SleepyStoryWriter"}
    await amake_page(client, draft_id, 1, "고래가 노래해요")
    draft = await current_draft(parent)
    assert draft is not None
    assert draft.last_error.startswith("1쪽을 만들지 못했어요(이야기: The storyteller fell asleep")
    page = (await client.get(reverse("books:draft", args=[draft_id]))).content.decode()
    assert "다시 해야 해요" in page  # the failed tab's badge
    assert "이야기 다시 만들기" in page
