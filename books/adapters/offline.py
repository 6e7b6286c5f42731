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
from collections.abc import AsyncIterator
from functools import cache
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from books.domain import Language
from books.ports import Illustrator, Picture, QuestionWriter, StoryContext, StoryWriter

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
        "그렇게 {names}은(는) 행복하게 집으로 돌아갔어요. 내일은 또 새로운 모험이 기다리고 있겠죠. 끝."
    ),
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
    rng = _rng(context, "story")
    names = _names(context)
    child_input = context.child_input.strip().rstrip(".!?")
    hero, trait = _trait(context, rng)
    sentences = [
        rng.choice(_OPENINGS[context.language]).format(names=names, input=child_input),
        rng.choice(_MIDDLES[context.language]).format(hero=hero, trait=trait),
    ]
    if context.is_last_page:
        sentences.append(_ENDINGS[context.language].format(names=names))
    else:
        sentences.append(rng.choice(_CLOSINGS[context.language]))
    return " ".join(sentences)


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
