"""The offline moderator: the embedded default, needing no key and no network.

Word lists in English and Korean plus a few rules for personal details, each a regular
expression read top to bottom. Deterministic: the same text always gets the same verdict.

English words match whole (``\\b``), with their usual endings. Korean has no spaces inside a
word and particles attach to the end (``늑대를``, ``죽이고``), so Korean entries are *stems*
that must start a Hangul word (``(?<![가-힣])``) and may go on with anything; a few are
narrowed where a stem is also an everyday word (``죽`` is porridge: ``죽이 뜨거워요`` is fine,
``죽이고`` is not). Ordinary fairy-tale words — the wolf, a sword, the witch, a dragon, the
ugly duckling, a shooting star — are left alone on purpose: the tests check some of them.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

from books.domain import Language
from books.ports import Concern, Moderator, Verdict

_HANGUL_START = r"(?<![가-힣])"
_KOREAN_COUNTERS = "(?:시|번|분|초|명|개|살|마리|권|일|월|년|장|잔|걸음|층|등|점|대|채|송이|그루|바퀴|배)"


def _english(*words: str) -> str:
    """Whole English words (each entry may carry its own endings as a regex)."""
    return r"\b(?:" + "|".join(words) + r")\b"


def _korean(*stems: str) -> str:
    """Korean stems that start a word; particles and verb endings may follow."""
    return _HANGUL_START + "(?:" + "|".join(stems) + ")"


@dataclass(frozen=True)
class Rule:
    concern: Concern
    pattern: re.Pattern[str]
    needs: re.Pattern[str] | None = None
    """A cheap search that must succeed for the pattern to be worth running at all."""
    needs_one_of: tuple[str, ...] = ()
    """Or words, one of which must be in the text (case folded): cheaper still than a search."""

    def finds(self, text: str) -> list[str]:
        if self.needs is not None and not self.needs.search(text):
            return []
        if self.needs_one_of:
            folded = text.casefold()
            if not any(word in folded for word in self.needs_one_of):
                return []
        return [match.group(0).strip() for match in self.pattern.finditer(text)]


def _rule(
    concern: Concern, *patterns: str, needs: str | None = None, needs_one_of: tuple[str, ...] = ()
) -> Rule:
    pattern = re.compile("|".join(patterns), re.IGNORECASE)
    return Rule(concern, pattern, re.compile(needs) if needs else None, needs_one_of)


RULES: tuple[Rule, ...] = (
    _rule(
        Concern.VIOLENCE,
        _english(
            r"kill(?:s|ed|ing)?",
            r"killers?(?!\s+whales?)",  # an orca is a killer whale
            r"murder(?:s|ed|ing|er|ers)?",
            r"stab(?:s|bed|bing)?",
            r"shoot(?:s|ing)?\s+(?:him|her|them|you|me|us|people|everyone)",
            r"shot\s+(?:him|her|them|you|me|us|dead)",
            r"behead(?:s|ed|ing)?",
            r"strangl(?:e|es|ed|ing)",
            r"tortur(?:e|es|ed|ing)",
            r"slaughter(?:s|ed|ing)?",
            r"massacre[sd]?",
            r"blood(?:y|ied)?",
            # A water pistol is a toy.
            r"(?<!water\s)(?<!toy\s)(?<!bubble\s)(?:guns?|pistols?)",
            r"rifles?",
            r"(?<!bath\s)bombs?",
        ),
        # 죽이다 (to kill) but not 죽이 (porridge + subject particle) standing alone.
        _HANGUL_START + r"죽이(?=[가-힣])",
        _korean("죽여", "죽였", "살인", "살해", "학살", "피투성이", "폭탄"),
        _korean(r"피를\s*흘", r"총으로", r"총을\s*쏘", r"목을\s*졸", r"칼로\s*찔", r"때려\s*죽"),
    ),
    _rule(
        Concern.SEXUAL,
        _english(
            r"sex(?:y|ual|ually)?",
            r"porn\w*",
            r"nudes?",
            r"nudity",
            r"penis(?:es)?",
            r"vaginas?",
            r"boob(?:s|ies)?",
            r"erotic\w*",
            r"orgasms?",
        ),
        _korean("섹스", "야동", "포르노", "성관계", "자위"),
    ),
    _rule(
        Concern.SELF_HARM,
        _english(
            r"suicid(?:e|al)",
            r"self[- ]?harm",
            # Only "kill": "I fell and hurt myself" and "cut myself some cake" are fine.
            r"kill(?:s|ing)?\s+(?:myself|yourself|himself|herself|themselves)",
            r"(?:want|wants|wanna)\s+(?:to\s+)?die",
        ),
        _korean("자살", "자해", r"죽고\s*싶", r"손목을\s*긋"),
    ),
    _rule(
        Concern.HATE,
        _english(
            r"stupid",
            r"idiots?",
            r"morons?",
            r"losers?",
            r"shut\s+up",
            r"hate\s+(?:you|him|her|them)",
            r"retard\w*",
            r"fuck\w*",
            r"shit\w*",
            r"bitch\w*",
            r"bastards?",
            r"assholes?",
        ),
        # Insults. Left out on purpose: 새끼 (also a baby animal), 꺼져 (a light goes out),
        # 닥쳐 (a storm comes on: 닥쳐왔어요) and 바보 (the hero of 바보 온달).
        _korean("멍청", "병신", "개새끼", "미친놈", "미친년", "찐따"),
        r"씨발|시발놈|좆",
    ),
    _rule(
        Concern.PERSONAL_DETAILS,
        # Every pattern of this rule has an @ or a digit; stories mostly have neither, and the
        # phone pattern's look-ahead at every position made this the costliest rule of all
        # (every sentence of every page is read, bench/README.md).
        # An e-mail address.
        r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+",
        # A phone number: nine to fifteen digits, either in groups (010-1234-5678, (555) 123 4567,
        # +82 10 1234 5678) or run together from a leading 0 or + (01012345678). A long number
        # that is neither (1000000000 stars) is a number, not a phone.
        r"(?<![\d.])(?=(?:[\s().+-]{0,3}\d){9})\(?\+?\d{1,4}\)?(?:[\s.-]{1,2}\d{2,4}){1,3}[\s.-]{1,2}\d{4}(?!\d)",
        r"(?<![\d.])(?:\+\d|0)\d{8,14}(?!\d)",
        # A street address: a house number, a name, and a street word.
        r"\b\d{1,5}\s+(?:[a-z]+\s+){1,3}(?:street|st|road|rd|avenue|ave|lane|ln|drive|dr|boulevard|blvd|court|ct)\b",
        # Korean addresses: a road name with its number (테헤란로 152, 올림픽로35길 10) or a flat
        # number (101동 1202호). 로 is also the particle "to": 집으로 2시에 and 하늘로 3번 are
        # not addresses: a counter word (시, 번, 명...) after the number says so.
        r"[가-힣]{2,}(?:로|길)\s*\d{1,4}(?:-\d{1,4})?(?!\d)(?!\s*" + _KOREAN_COUNTERS + ")",
        r"\d+\s*동\s*\d+\s*호",
        needs=r"[\d@]",
    ),
    _rule(
        Concern.PERSONAL_DETAILS,
        _english(r"my\s+address\s+is", r"i\s+live\s+at"),
        _korean(r"주소는", r"우리\s*집\s*주소", r"전화번호는"),
        # Read on every sentence of every page like the rule above; its alternation is tried at
        # every position, some thirty times the cost of looking for the words it cannot match
        # without.
        needs_one_of=("address", "live", "주소", "전화번호"),
    ),
)


def find_concerns(text: str, *, only: Concern | None = None) -> dict[Concern, list[str]]:
    """Each concern found in ``text`` with the words that raised it, in rule order (or ``only`` one)."""
    # NFKC folds full-width letters and digits (ｋｉｌｌ, ０１０) into the plain ones.
    normalised = unicodedata.normalize("NFKC", text)
    found: dict[Concern, list[str]] = {}
    for rule in RULES:
        if only is not None and rule.concern is not only:
            continue
        matches = rule.finds(normalised)
        if matches:
            found.setdefault(rule.concern, []).extend(matches)
    return found


def verdict_for(found: dict[Concern, list[str]]) -> Verdict:
    if not found:
        return Verdict.clean()
    reason = "; ".join(
        f"{concern.value}: {', '.join(dict.fromkeys(words))}" for concern, words in found.items()
    )
    return Verdict(flagged=True, categories=tuple(sorted(c.value for c in found)), reason=reason[:300])


class OfflineModerator(Moderator):
    name = "offline"

    async def check(self, text: str, *, language: Language) -> Verdict:
        # Both lists always: a Korean book can hold English words and the other way round.
        return verdict_for(find_concerns(text))
