"""The offline storyteller: the embedded default, needing no key and no network.

Deterministic for the same inputs and different for different ones: every choice comes
from a random generator seeded with a hash of the context. Text is streamed in pieces
with a small pause, like a real model, and pictures are drawn with Pillow.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import random
import re
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from books.domain import AgeBand, Language
from books.ports import Illustrator, Picture, QuestionWriter, StoryContext, StoryWriter, WordExplainer

PIECE_PAUSE_SECONDS = 0.02
PICTURE_SIZE = (768, 512)
CJK_FONTS = (
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",
    "/usr/share/fonts/opentype/noto/NotoSansCJK-Bold.ttc",
    "/usr/share/fonts/truetype/noto/NotoSansCJK-Regular.ttc",
)

_OPENINGS = {
    Language.ENGLISH: [
        "Once upon a time, {names} were together when {input}.",
        "One bright morning, {input}, and {names} could hardly believe it.",
        "Nobody expected it, but {input} — and {names} were right there.",
    ],
    Language.KOREAN: [
        "옛날 옛적에, {names}이(가) 함께 있을 때 {input}.",
        "어느 맑은 아침, {input}. {names}은(는) 눈을 동그랗게 떴어요.",
        "아무도 몰랐지만, {input}. 그때 {names}이(가) 그곳에 있었어요.",
    ],
}
_MIDDLES = {
    Language.ENGLISH: [
        "{hero}, who is {trait}, took a deep breath and stepped forward.",
        "{hero} remembered being {trait} and smiled a brave little smile.",
        "Being {trait}, {hero} had an idea that made everyone giggle.",
    ],
    Language.KOREAN: [
        "{trait} {hero}은(는) 숨을 크게 쉬고 한 걸음 앞으로 나아갔어요.",
        "{hero}은(는) 자기가 {trait} 것을 떠올리고 씩씩하게 웃었어요.",
        "{trait} {hero}에게 모두를 웃게 할 좋은 생각이 떠올랐어요.",
    ],
}
_CLOSINGS = {
    Language.ENGLISH: [
        "The wind whispered that something new was about to happen.",
        "Far away, a little light began to twinkle.",
        "And just then, they heard a soft knock-knock-knock.",
    ],
    Language.KOREAN: [
        "바람이 살랑살랑, 곧 새로운 일이 생길 거라고 속삭였어요.",
        "저 멀리서 작은 불빛이 반짝이기 시작했어요.",
        "바로 그때, 똑똑똑 작은 소리가 들려왔어요.",
    ],
}
_ENDINGS = {
    Language.ENGLISH: (
        "And so {names} went home happy, knowing tomorrow would bring a new adventure. The end."
    ),
    Language.KOREAN: (
        "그렇게 {names}은(는) 내일 기다리고 있을 새로운 모험을 꿈꾸며 행복하게 집으로 돌아갔어요. 끝."
    ),
}
_SENTENCE_END = re.compile(r"[.!?][”\"']?(?=\s|$)")

# The youngest get a short page: the opening, then one of these little sentences.
_LITTLE_LINES = {
    Language.ENGLISH: [
        "{hero} clapped and shouted hooray!",
        "{hero} said “Wow!”",
        "Splish, splash, {hero} laughed.",
    ],
    Language.KOREAN: [
        "{hero}은(는) 짝짝짝 손뼉을 쳤어요.",
        "{hero}이(가) “우아!” 하고 말했어요.",
        "{hero}은(는) 깔깔 웃었어요.",
    ],
}
_LITTLE_ENDINGS = {
    Language.ENGLISH: "Everyone went home happy — the end.",
    Language.KOREAN: "모두 행복하게 집에 갔어요, 끝.",
}
# The oldest get a longer page: more happens between the opening and the close.
_MORE_MIDDLES = {
    Language.ENGLISH: [
        "The air shimmered with a curious, glittering light that nobody could quite explain.",
        "Somewhere nearby, an enormous clock ticked patiently, as if it were waiting for something.",
        "Their hearts thumped with excitement, because an extraordinary discovery felt very close.",
    ],
    Language.KOREAN: [
        "공기 속에서 아무도 설명할 수 없는 신비로운 빛이 반짝반짝 일렁였어요.",
        "근처 어딘가에서 커다란 시계가 무언가를 기다리듯 째깍째깍 울렸어요.",
        "놀라운 발견이 바로 가까이에 있는 것 같아서 모두의 가슴이 두근두근 뛰었어요.",
    ],
}
_MORE_DETAILS = {
    Language.ENGLISH: [
        "Together they whispered a plan, carefully deciding who would go first.",
        "They noticed footprints leading towards the hill and wondered who had left them.",
        "A gentle breeze carried the scent of warm bread and adventure.",
    ],
    Language.KOREAN: [
        "모두 함께 속삭이며 누가 먼저 갈지 차근차근 계획을 세웠어요.",
        "언덕 쪽으로 이어진 발자국을 보고, 누가 남긴 걸까 궁금해했어요.",
        "부드러운 바람이 따뜻한 빵 냄새와 모험의 냄새를 실어 왔어요.",
    ],
}

_QUESTIONS = {
    Language.ENGLISH: [
        "What do you think {hero} will find next?",
        "Where should {hero} go now?",
        "Who might {hero} meet on the way?",
        "What could {hero} do to help?",
    ],
    Language.KOREAN: [
        "{hero}은(는) 다음에 무엇을 발견할까요?",
        "{hero}은(는) 이제 어디로 가면 좋을까요?",
        "{hero}은(는) 가는 길에 누구를 만날까요?",
        "{hero}은(는) 어떻게 도울 수 있을까요?",
    ],
}

# Real meanings for the words the templates above use (and a few a child's idea often
# brings); any other word gets the kind fallback, since an offline explainer cannot know it.
_ENGLISH_GLOSSARY = {
    "adventure": "an exciting trip where new and surprising things happen.",
    "whispered": "said something very quietly, so only someone close by could hear.",
    "twinkle": "to shine with tiny flashes of light, like a star at night.",
    "giggle": "a small, happy laugh that bubbles out when something is funny.",
    "breath": "the air you take in through your nose or mouth.",
    "brave": "ready to do something even when it feels a little scary.",
    "remembered": "thought again about something from before.",
    "expected": "thought that something was going to happen.",
    "believe": "to feel sure that something is true.",
    "tomorrow": "the day that comes after today.",
    "together": "with each other, side by side.",
    "morning": "the first part of the day, when the sun comes up.",
    "bright": "full of light and shining.",
    "stepped": "moved a foot to walk.",
    "forward": "towards the front, the way you are facing.",
    "knock": "to tap on a door so the people inside know you are there.",
    "idea": "a new thought that pops into your head.",
    "wind": "moving air that you can feel but cannot see.",
    "hardly": "almost not at all.",
    "smiled": "made a happy face with the corners of the mouth turned up.",
    "knowing": "being sure about something.",
    "umbrella": "a roof you carry over your head when it rains.",
    "dragon": "a big make-believe animal with wings, in old stories.",
    "sneezes": 'blows air out of the nose all of a sudden, with an "achoo!"',
    "glitter": "tiny shiny bits that sparkle in the light.",
}
# Keyed by stem, so "바람이" and "반짝이기" find their entry; the headword is what is shown.
_KOREAN_GLOSSARY = {
    "바람": ("바람", "밖에서 움직이는 공기예요. 보이지 않지만 나뭇잎을 흔들어요."),
    "불빛": ("불빛", "어둠 속에서 반짝 빛나는 작은 빛이에요."),
    "모험": ("모험", "새롭고 신나는 일을 찾아 떠나는 여행이에요."),
    "아침": ("아침", "해가 떠오르는 하루의 처음이에요."),
    "옛날": ("옛날", "아주아주 오래전이에요."),
    "함께": ("함께", "여럿이 같이 있는 거예요."),
    "살랑살랑": ("살랑살랑", "바람이 부드럽게 조금씩 부는 모양이에요."),
    "속삭": ("속삭이다", "귀에 대고 아주 작은 목소리로 말하는 거예요."),
    "반짝": ("반짝이다", "작은 빛이 깜빡깜빡 빛나는 거예요."),
    "씩씩": ("씩씩하다", "무서워도 힘차고 당당하게 하는 거예요."),
    "용감": ("용감하다", "무서운 일 앞에서도 겁내지 않는 거예요."),
    "동그랗": ("동그랗다", "공처럼 둥근 모양이에요."),
    "행복": ("행복", "마음이 아주 기쁘고 즐거운 느낌이에요."),
    "내일": ("내일", "오늘 다음에 오는 날이에요."),
    "걸음": ("걸음", "발을 한 번 옮겨 걷는 거예요."),
    "생각": ("생각", "머릿속에 떠오르는 마음이에요."),
    "떠올": ("떠올리다", "잊고 있던 것이나 좋은 생각이 머릿속에 생겨나는 거예요."),
    "똑똑똑": ("똑똑똑", "문을 가볍게 두드리는 소리예요."),
    "소리": ("소리", "귀로 들리는 모든 것이에요."),
    "기다리": ("기다리다", "누가 오거나 무슨 일이 생길 때까지 있는 거예요."),
    "멀리": ("멀리", "아주 먼 곳이에요."),
    "새로운": ("새로운", "전에 없던, 처음 보는 거예요."),
    "재채기": ("재채기", '코가 간질간질해서 갑자기 "에취!" 하고 나오는 거예요.'),
}
_UNKNOWN_WORD = {
    Language.ENGLISH: "a word from our story; ask a grown-up what it means and use it in a sentence!",
    Language.KOREAN: (
        "우리 이야기에 나온 낱말이에요. 어른에게 뜻을 물어보고, 이 낱말을 넣어서 문장을 만들어 보세요!"
    ),
}


def _word_set(words: str) -> frozenset[str]:
    return frozenset(words.split())


# Words every child knows already, or that mean nothing on their own.
_COMMON_ENGLISH = _word_set(
    """about after again all also and any are around away back because been before being but came
    can could did does down each every everyone everything far for from get going had has have her
    here him his home how into its just like little made make many more much must new next nobody
    not now off once one only onto other our out over right said saw see she should some something
    that the their them then there these they this those through time too took under upon very
    want was way went were what when where which while who will with would yes you your"""
)
# Hangul words that are mostly grammar or too plain to explain.
_COMMON_KOREAN = _word_set(
    """그리고 그때 그곳 그래서 하지만 바로 어느 아무 자기 모두 우리 정말 아주 생길
    있는 없는 같은 이제 다음"""
)
# Nouns that end in 이 where the 이 is not the subject particle.
_KOREAN_NOUNS_ENDING_IN_I = _word_set("고양이 호랑이 원숭이 부엉이 지렁이 어린이 놀이 종이 거북이")
# Longer particles first, so "으로" is taken off whole rather than as "로".
_KOREAN_PARTICLES = (
    "에서",
    "에게",
    "으로",
    "까지",
    "부터",
    "처럼",
    "한테",
    "이랑",
    "랑",
    "로",
    "에",
    "의",
    "도",
    "와",
    "과",
)
_KOREAN_VERB_ENDINGS = ("요", "다", "죠", "고", "게", "며", "면", "서", "지만", "니다", "까", "한")


def _rng(context: StoryContext, purpose: str) -> random.Random:
    sheet = context.character_sheet()
    key = (
        f"{purpose}|{context.book_key}|{context.page_number}|{context.language}|{sheet}|{context.child_input}"
    )
    return random.Random(hashlib.sha256(key.encode()).digest())


def _names(context: StoryContext) -> str:
    names = [c.name for c in context.characters]
    if context.language is Language.KOREAN:
        return ", ".join(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def _trait(context: StoryContext, rng: random.Random) -> tuple[str, str]:
    hero = rng.choice(context.characters)
    default = "용감한" if context.language is Language.KOREAN else "kind and brave"
    return hero.name, (hero.description.rstrip(".") or default)


async def _stream(text: str, rng: random.Random) -> AsyncIterator[str]:
    words = text.split(" ")
    index = 0
    while index < len(words):
        size = rng.randint(1, 3)
        piece = " ".join(words[index : index + size])
        index += size
        yield piece + (" " if index < len(words) else "")
        await asyncio.sleep(PIECE_PAUSE_SECONDS)


def offline_page_text(context: StoryContext) -> str:
    """A page as long as the child's age band asks: two short sentences for 3–5, up to six for 9–10."""
    rng = _rng(context, "story")
    names = _names(context)
    child_input = context.child_input.strip().rstrip(".!?")
    hero, trait = _trait(context, rng)
    language = context.language
    opening = rng.choice(_OPENINGS[language]).format(names=names, input=child_input)
    if context.age_band is AgeBand.THREE_TO_FIVE:
        middles = [] if context.is_last_page else [rng.choice(_LITTLE_LINES[language]).format(hero=hero)]
        closing = _LITTLE_ENDINGS[language] if context.is_last_page else ""
    else:
        middles = [rng.choice(_MIDDLES[language]).format(hero=hero, trait=trait)]
        if context.age_band is AgeBand.NINE_TO_TEN:
            middles += [rng.choice(_MORE_MIDDLES[language]), rng.choice(_MORE_DETAILS[language])]
        if context.is_last_page:
            closing = _ENDINGS[language].format(names=names)
        else:
            closing = rng.choice(_CLOSINGS[language])
    # Some openings and endings are two sentences: the middle gives way, never the story's shape.
    _, most = context.age_band.sentences
    while middles and sentence_count(" ".join([opening, *middles, closing])) > most:
        middles.pop()
    return " ".join(part for part in [opening, *middles, closing] if part)


def sentence_count(text: str) -> int:
    return len(_SENTENCE_END.findall(text.strip()))


class OfflineStoryWriter(StoryWriter):
    async def write(self, context: StoryContext) -> AsyncIterator[str]:
        async for piece in _stream(offline_page_text(context), _rng(context, "pieces")):
            yield piece


class OfflineQuestionWriter(QuestionWriter):
    async def ask(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        rng = _rng(context, "question")
        hero = rng.choice(context.characters).name
        question = rng.choice(_QUESTIONS[context.language]).format(hero=hero)
        async for piece in _stream(question, rng):
            yield piece


def _has_final_consonant(syllable: str) -> bool:
    return "가" <= syllable <= "힣" and (ord(syllable) - ord("가")) % 28 != 0


def _korean_noun(token: str) -> str | None:
    """The noun in a Hangul word with its particle taken off, or None if it looks like a verb."""
    if token in _KOREAN_NOUNS_ENDING_IN_I:
        return token
    for particle in _KOREAN_PARTICLES:
        if token.endswith(particle) and len(token) > len(particle):
            return token[: -len(particle)]
    # 이/은/을 follow a final consonant and 가/는/를 a vowel, so the pair tells a particle
    # from a word that merely ends in that syllable.
    stem, last = token[:-1], token[-1:]
    if stem and last in "이은을" and _has_final_consonant(stem[-1]):
        return stem
    if stem and last in "가는를" and not _has_final_consonant(stem[-1]):
        return stem
    if token.endswith(_KOREAN_VERB_ENDINGS):
        return None
    return token


def _korean_candidates(page_text: str, names: tuple[str, ...]) -> list[tuple[str, str | None]]:
    """(headword, meaning or None) for each Hangul word worth explaining, in page order."""
    stems = sorted(_KOREAN_GLOSSARY, key=len, reverse=True)
    found: list[tuple[str, str | None]] = []
    name_parts = [part for name in names for part in re.findall(r"[가-힣]+", name)]
    for token in re.findall(r"[가-힣]+", page_text):
        if any(token.startswith(part) for part in name_parts):
            continue
        stem = next((stem for stem in stems if token.startswith(stem)), None)
        if stem is not None:
            found.append(_KOREAN_GLOSSARY[stem])
            continue
        noun = _korean_noun(token)
        if noun and len(noun) >= 2 and noun not in _COMMON_KOREAN:
            found.append((noun, None))
    return found


def _english_candidates(page_text: str, names: tuple[str, ...]) -> list[tuple[str, str | None]]:
    skipped = {part.lower() for name in names for part in re.findall(r"[A-Za-z]+", name)}
    found: list[tuple[str, str | None]] = []
    for token in re.findall(r"[A-Za-z]+(?:['’][A-Za-z]+)*", page_text):
        word = re.sub(r"['’]s$", "", token).lower()
        if word in skipped or word in _COMMON_ENGLISH or len(word) < 4 or "'" in word or "’" in word:
            continue
        found.append((word, _ENGLISH_GLOSSARY.get(word)))
    return found


def offline_new_words(context: StoryContext, page_text: str) -> list[str]:
    """Two or three "word — meaning" lines for words on the page (fewer if the page has fewer)."""
    rng = _rng(context, "words")
    names = tuple(c.name.strip() for c in context.characters)
    if context.language is Language.KOREAN:
        candidates = _korean_candidates(page_text, names)
    else:
        candidates = _english_candidates(page_text, names)
    unique = list(dict.fromkeys(candidates))
    # Words with a real meaning first (in a seeded order, so books with the same words do not
    # all explain the same ones), then the longest of the rest.
    order = list(range(len(unique)))
    rng.shuffle(order)
    ranked = sorted(order, key=lambda i: (0, 0) if unique[i][1] else (1, -len(unique[i][0])))
    fewest, most = context.age_band.new_words
    chosen = sorted(ranked[: rng.randint(fewest, most)])  # back in page order
    fallback = _UNKNOWN_WORD[context.language]
    return [f"{unique[i][0]} — {unique[i][1] or fallback}" for i in chosen]


class OfflineWordExplainer(WordExplainer):
    async def explain(self, context: StoryContext, page_text: str) -> AsyncIterator[str]:
        rng = _rng(context, "word pieces")
        lines = offline_new_words(context, page_text)
        for index, line in enumerate(lines):
            async for piece in _stream(line, rng):
                yield piece
            if index < len(lines) - 1:
                yield "\n"


class OfflineIllustrator(Illustrator):
    async def draw(self, context: StoryContext) -> Picture:
        # Drawing is CPU work; keep it off the event loop.
        data = await asyncio.to_thread(draw_page, context)
        return Picture(data=data, meta={"drawn_by": "offline"})


@cache
def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    for path in CJK_FONTS:
        if Path(path).exists():
            return ImageFont.truetype(path, size)
    return ImageFont.load_default(size)


def _character_colour(name: str, description: str) -> tuple[int, int, int]:
    # From the character sheet only, so a character keeps their colour on every page.
    digest = hashlib.sha256(f"{name}|{description}".encode()).digest()
    return (60 + digest[0] % 170, 60 + digest[1] % 170, 60 + digest[2] % 170)


def draw_page(context: StoryContext) -> bytes:
    rng = _rng(context, "picture")
    width, height = PICTURE_SIZE
    image = Image.new("RGB", PICTURE_SIZE)
    draw = ImageDraw.Draw(image)
    top = (rng.randint(90, 200), rng.randint(150, 220), rng.randint(200, 255))
    bottom = (255, rng.randint(200, 240), rng.randint(170, 220))
    horizon = int(height * 0.68)
    for y in range(horizon):
        t = y / horizon
        draw.line(
            [(0, y), (width, y)], fill=tuple(int(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        )
    draw.rectangle([0, horizon, width, height], fill=(rng.randint(70, 120), rng.randint(150, 200), 90))
    sun_x, sun_y = rng.randint(60, width - 60), rng.randint(40, 120)
    draw.ellipse([sun_x - 38, sun_y - 38, sun_x + 38, sun_y + 38], fill=(255, 226, 110))
    for _ in range(rng.randint(2, 4)):
        cx, cy = rng.randint(0, width), rng.randint(30, horizon - 120)
        for dx in (-30, 0, 30):
            draw.ellipse([cx + dx - 34, cy - 20, cx + dx + 34, cy + 22], fill=(255, 255, 255))
    count = len(context.characters)
    for index, character in enumerate(context.characters):
        x = int(width * (index + 1) / (count + 1)) + rng.randint(-15, 15)
        _draw_character(draw, x, horizon + 40, character.name, character.description)
    caption = context.child_input.strip()[:60]
    if caption:
        font = _font(22)
        draw.rounded_rectangle([12, height - 48, width - 12, height - 10], radius=12, fill=(255, 255, 255))
        draw.text((24, height - 42), caption, fill=(40, 40, 60), font=font)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def _draw_character(draw: ImageDraw.ImageDraw, x: int, feet: int, name: str, description: str) -> None:
    colour = _character_colour(name, description)
    draw.rounded_rectangle([x - 26, feet - 90, x + 26, feet - 20], radius=18, fill=colour)
    draw.ellipse([x - 30, feet - 150, x + 30, feet - 90], fill=(255, 224, 196), outline=colour, width=5)
    draw.ellipse([x - 14, feet - 128, x - 6, feet - 120], fill=(40, 40, 40))
    draw.ellipse([x + 6, feet - 128, x + 14, feet - 120], fill=(40, 40, 40))
    draw.arc([x - 12, feet - 118, x + 12, feet - 100], start=20, end=160, fill=(150, 60, 60), width=3)
    draw.line([(x - 12, feet - 20), (x - 16, feet)], fill=colour, width=8)
    draw.line([(x + 12, feet - 20), (x + 16, feet)], fill=colour, width=8)
    font = _font(18)
    draw.text((x, feet - 168), name[:14], fill=(30, 30, 50), font=font, anchor="mm")
