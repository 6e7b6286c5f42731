"""The child's age band shapes the writing: the OpenAI prompts (through the real SDK, against the
loopback server that records every request) and the offline storyteller's pages and new words."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from books import services
from books.adapters.offline import OfflineWordExplainer, offline_new_words, offline_page_text
from books.adapters.openai import (
    OpenAIQuestionWriter,
    OpenAIStoryWriter,
    OpenAIWordExplainer,
    close_shared_clients,
)
from books.domain import AgeBand, BookDraft, Character, Language
from books.ports import PageSoFar, StoryContext
from families import services as family_services
from tests.fake_openai import FakeOpenAI, point_settings_at

BANDS = list(AgeBand)
PAGE_TEXT = (
    "Mina whispered to the brave dragon, and a bright morning adventure began together with a "
    "twinkle of glitter near the umbrella."
)


def context_for(band: AgeBand, **changes: Any) -> StoryContext:
    values: dict[str, Any] = {
        "characters": (Character("Mina", "a curious girl"), Character("Bori", "a small brown dog")),
        "language": Language.ENGLISH,
        "page_number": 2,
        "page_count": 4,
        "pages_so_far": (PageSoFar(1, "Mina and Bori found a map."),),
        "child_input": "they follow the map to a river of lemonade",
        "book_key": "book-1",
        "age_band": band,
    }
    values.update(changes)
    return StoryContext(**values)


def sentences(text: str) -> list[str]:
    """Sentences as a reader counts them: a full stop, "!" or "?" (a closing quote may follow)."""
    return re.findall(r".+?[.!?][”\"']?(?=\s|$)", text.strip())


# -- the domain --------------------------------------------------------------------------------------


def test_age_bands_grow_with_the_child() -> None:
    young, middle, old = AgeBand.THREE_TO_FIVE, AgeBand.SIX_TO_EIGHT, AgeBand.NINE_TO_TEN
    assert young.sentences[1] < old.sentences[0] + 1
    assert young.words_per_sentence < middle.words_per_sentence < old.words_per_sentence
    assert young.new_words == (2, 2) and old.new_words == (3, 3)


def test_a_draft_keeps_its_child_and_age_band_through_json() -> None:
    draft = BookDraft.begin(draft_id="d1", owner_id=1, child_id=7, age_band=AgeBand.NINE_TO_TEN)
    again = BookDraft.from_dict(draft.to_dict())
    assert (again.child_id, again.age_band) == (7, AgeBand.NINE_TO_TEN)


# -- OpenAI: the prompts, as the server received them ---------------------------------------------


@pytest.fixture
def server(settings: Any) -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as fake:
        point_settings_at(settings, fake)
        yield fake


@pytest.fixture
async def clients_closed() -> AsyncIterator[None]:
    yield
    await close_shared_clients()


def system_prompt(body: dict[str, Any]) -> str:
    return str(body["messages"][0]["content"])


STORY_RULES = {
    AgeBand.THREE_TO_FIVE: [
        "The child is 3 to 5 years old.",
        "Write two to three sentences of at most 8 words each.",
        "very simple, everyday words",
    ],
    AgeBand.SIX_TO_EIGHT: [
        "The child is 6 to 8 years old.",
        "Write three to four sentences of at most 12 words each.",
        "at most one new or interesting word",
    ],
    AgeBand.NINE_TO_TEN: [
        "The child is 9 to 10 years old.",
        "Write four to six sentences of at most 18 words each.",
        "rich, vivid words",
    ],
}
WORD_RULES = {
    AgeBand.THREE_TO_FIVE: "Pick exactly two words from the page that a child who is 3 to 5 years old",
    AgeBand.SIX_TO_EIGHT: "Pick two to three words from the page that a child who is 6 to 8 years old",
    AgeBand.NINE_TO_TEN: "Pick exactly three words from the page that a child who is 9 to 10 years old",
}


@pytest.mark.parametrize("band", BANDS)
async def test_the_story_prompt_follows_the_age_band(
    band: AgeBand, server: FakeOpenAI, clients_closed: None
) -> None:
    pieces = [piece async for piece in OpenAIStoryWriter().write(context_for(band))]
    assert "".join(pieces).strip()
    [request] = server.requests_to("chat")
    rules = system_prompt(request)
    for rule in STORY_RULES[band]:
        assert rule in rules
    for other in set(BANDS) - {band}:
        assert STORY_RULES[other][1] not in rules
    # The child's words stay story material, after the rules.
    assert "<child_idea>\nthey follow the map to a river of lemonade\n</child_idea>" in str(
        request["messages"][-1]["content"]
    )


@pytest.mark.parametrize("band", BANDS)
async def test_the_new_words_prompt_asks_for_as_many_words_as_the_band_needs(
    band: AgeBand, server: FakeOpenAI, clients_closed: None
) -> None:
    [piece async for piece in OpenAIWordExplainer().explain(context_for(band), PAGE_TEXT)]
    [request] = server.requests_to("chat")
    assert WORD_RULES[band] in system_prompt(request)


@pytest.mark.parametrize("band", BANDS)
async def test_the_question_prompt_knows_the_childs_age(
    band: AgeBand, server: FakeOpenAI, clients_closed: None
) -> None:
    [piece async for piece in OpenAIQuestionWriter().ask(context_for(band), PAGE_TEXT)]
    [request] = server.requests_to("chat")
    assert STORY_RULES[band][0].rstrip(".") in system_prompt(request)


@pytest.mark.django_db(transaction=True)
async def test_a_book_made_with_a_child_is_written_for_their_age(
    parent: Any, fake_openai: FakeOpenAI, settings: Any
) -> None:
    """From the child's profile to the request the storyteller receives, through the services."""
    point_settings_at(settings, fake_openai)
    settings.LITTLEWRITER = {
        **settings.LITTLEWRITER,
        "STORY_WRITER": "books.adapters.openai.OpenAIStoryWriter",
        "WORD_EXPLAINER": "books.adapters.openai.OpenAIWordExplainer",
    }
    pip = await sync_to_async(family_services.add_child)(parent_id=parent.pk, nickname="Pip", age_band="3-5")
    draft = await sync_to_async(services.start_book)(
        user_id=parent.pk, child_id=pip.pk, characters=[("Mina", "a girl")], page_count=2, language="en"
    )
    try:
        await services.make_next_page(
            user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input="a dragon comes to tea"
        )
    finally:
        await close_shared_clients()
    prompts = [system_prompt(body) for body in fake_openai.requests_to("chat")]
    assert any(STORY_RULES[AgeBand.THREE_TO_FIVE][1] in prompt for prompt in prompts)
    assert any(WORD_RULES[AgeBand.THREE_TO_FIVE] in prompt for prompt in prompts)


# -- the offline storyteller ---------------------------------------------------------------------


@pytest.mark.parametrize("band", BANDS)
@pytest.mark.parametrize("language", list(Language))
@pytest.mark.parametrize("last_page", [False, True])
def test_offline_pages_have_as_many_sentences_as_the_band_allows(
    band: AgeBand, language: Language, last_page: bool
) -> None:
    fewest, most = band.sentences
    for book_key in (f"book-{n}" for n in range(12)):  # openings, middles and endings all come up
        context = context_for(band, language=language, book_key=book_key, page_number=4 if last_page else 2)
        text = offline_page_text(context)
        assert fewest <= len(sentences(text)) <= most, text
        if last_page:
            assert text.endswith(("The end.", "the end.", "끝."))


@pytest.mark.parametrize("language", list(Language))
def test_offline_pages_grow_longer_with_the_child(language: Language) -> None:
    lengths = [
        sum(len(offline_page_text(context_for(band, language=language, book_key=f"b{n}"))) for n in range(5))
        for band in BANDS
    ]
    assert lengths[0] < lengths[1] < lengths[2]


@pytest.mark.parametrize(("band", "count"), [(AgeBand.THREE_TO_FIVE, 2), (AgeBand.NINE_TO_TEN, 3)])
@pytest.mark.parametrize("book_key", ["book-1", "book-2", "book-3"])
def test_offline_new_words_count_follows_the_band(band: AgeBand, count: int, book_key: str) -> None:
    assert len(offline_new_words(context_for(band, book_key=book_key), PAGE_TEXT)) == count


async def test_offline_new_words_stream_as_many_lines() -> None:
    context = context_for(AgeBand.NINE_TO_TEN)
    text = "".join([piece async for piece in OfflineWordExplainer().explain(context, PAGE_TEXT)])
    assert len(text.splitlines()) == 3
