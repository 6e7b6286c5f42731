"""The offline moderator's own rules: fairy tales pass, Korean stems are found with their
particles, everyday words that look like bad ones are left alone, and the offline
storyteller's pages are never held back."""

from __future__ import annotations

import asyncio
import unicodedata

import pytest

from books.adapters.offline import offline_new_words, offline_page_text
from books.adapters.offline_moderator import RULES, OfflineModerator, find_concerns
from books.domain import Character, Language
from books.ports import Concern, StoryContext


def concerns(text: str) -> set[str]:
    return {concern.value for concern in find_concerns(text)}


@pytest.mark.parametrize(
    "text",
    [
        "the wolf",
        "a sword",
        "the witch",
        "The big bad wolf huffed and puffed.",
        "The ugly duckling saw a shooting star.",
        "Mina fell and hurt herself, then cut herself a slice of cake.",
        "Bori had a water gun and a bubble gun.",
        "The dragon breathed fire on the candles of the birthday cake.",
        "Page 12 of 16, in the year 1999.",
        "There were 1000000000 stars in the sky.",
        "A killer whale waved at the boat.",
        "Bori dropped a bath bomb in the tub.",
        "늑대가 나타났어요.",
        "마녀가 빗자루를 탔어요.",
        "용이 불을 뿜었어요.",
        "곰돌이가 죽이 뜨겁다고 했어요.",  # 죽 is porridge here
        "불이 꺼져요.",  # a light goes out
        "폭풍이 닥쳐왔어요.",  # a storm comes on
        "새끼 고양이가 울었어요.",  # a kitten
        "바보 온달 이야기를 들었어요.",
        "집으로 2시에 갔어요.",
        "하늘로 3번 뛰었어요.",
        "왕의 고문이 지혜로운 말을 했어요.",
    ],
)
def test_fairy_tale_words_are_not_flagged(text: str) -> None:
    assert concerns(text) == set()


@pytest.mark.parametrize(
    ("text", "concern"),
    [
        ("괴물을 죽이고 싶어요", Concern.VIOLENCE),
        ("토끼를 죽였어요", Concern.VIOLENCE),
        ("괴물이 칼로 찔렀어요", Concern.VIOLENCE),
        ("너는 멍청이야", Concern.HATE),
        ("이 병신아", Concern.HATE),
        ("자살하고 싶어", Concern.SELF_HARM),
        ("나는 죽고 싶어요", Concern.SELF_HARM),
        ("우리 집은 101동 1202호예요", Concern.PERSONAL_DETAILS),
        ("내 전화번호는 비밀이야", Concern.PERSONAL_DETAILS),
        ("The troll killed the goat.", Concern.VIOLENCE),
        ("ｋｉｌｌ the cat", Concern.VIOLENCE),  # full-width letters
        ("He shot them all.", Concern.VIOLENCE),
        ("What a stupid princess.", Concern.HATE),
        ("Shut up, dragon!", Concern.HATE),
        ("my address is the blue house", Concern.PERSONAL_DETAILS),
        ("Ring (555) 123-4567", Concern.PERSONAL_DETAILS),
        ("엄마 번호 01012345678", Concern.PERSONAL_DETAILS),
        ("call +82 10 1234 5678", Concern.PERSONAL_DETAILS),
    ],
)
def test_harmful_words_are_found_with_particles_and_endings(text: str, concern: Concern) -> None:
    assert concern.value in concerns(text)


PERSONAL_DETAILS_SEEN = [
    "우리 집은 101동 1202호예요",
    "내 전화번호는 비밀이야",
    "우리집주소는 비밀",
    "my address is the blue house",
    "My ADDRESS  is here",
    "ＭＹ ＡＤＤＲＥＳＳ ＩＳ ten",  # full-width, folded by NFKC
    "I live at the end of the lane",
    "i LIVE at 12 Rose street",
    "Ring (555) 123-4567",
    "엄마 번호 01012345678",
    "call +82 10 1234 5678",
    "write to mina@example.com",
    "테헤란로 152에 살아요",
]


@pytest.mark.parametrize("text", PERSONAL_DETAILS_SEEN)
def test_the_cheap_looks_before_a_rule_never_hide_what_it_finds(text: str) -> None:
    # The looks that let a rule skip its pattern are only a shortcut: the same words are found.
    normalised = unicodedata.normalize("NFKC", text)
    found = [word for rule in RULES for word in rule.finds(normalised)]
    unfiltered = [m.group(0).strip() for rule in RULES for m in rule.pattern.finditer(normalised)]
    assert found == unfiltered
    assert Concern.PERSONAL_DETAILS in find_concerns(text)


def test_the_reason_names_what_was_found_for_staff() -> None:
    verdict = asyncio.run(OfflineModerator().check("The troll killed the goat.", language=Language.ENGLISH))
    assert verdict.flagged and verdict.reason == "violence: killed"


def test_the_same_text_always_gets_the_same_verdict() -> None:
    moderator = OfflineModerator()
    text = "You are stupid and I will kill you. 010-1234-5678"
    first = asyncio.run(moderator.check(text, language=Language.ENGLISH))
    assert all(asyncio.run(moderator.check(text, language=Language.ENGLISH)) == first for _ in range(3))


CHILD_IDEAS = [
    "a dragon sneezes glitter",
    "the wolf knocks on the door",
    "a witch lends Mina her broom",
    "they find a sword in the stone",
    "it starts to snow in summer",
]
KOREAN_IDEAS = ["용이 반짝이를 재채기해요", "늑대가 문을 두드려요", "마녀가 빗자루를 빌려줘요"]


@pytest.mark.parametrize("page", [1, 2, 4])
def test_the_offline_storytellers_pages_are_never_held_back(page: int) -> None:
    for language, ideas, characters in [
        (
            Language.ENGLISH,
            CHILD_IDEAS,
            (Character("Mina", "a brave girl"), Character("Bori", "a sleepy cat")),
        ),
        (Language.KOREAN, KOREAN_IDEAS, (Character("민아", "용감한 아이"), Character("보리", "졸린 고양이"))),
    ]:
        for idea in ideas:
            context = StoryContext(
                characters=characters,
                language=language,
                page_number=page,
                page_count=4,
                pages_so_far=(),
                child_input=idea,
                book_key=f"book-{idea}",
            )
            text = offline_page_text(context)
            assert concerns(text) == set(), text
            assert concerns("\n".join(offline_new_words(context, text))) == set()
