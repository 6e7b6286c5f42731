"""The OpenAI moderator: OpenAI's moderation endpoint, through the shared client.

OpenAI's categories are mapped onto ours (``books.ports.Concern``). The endpoint does not
look for personal details, so the offline moderator's rules for phone numbers, e-mail and
street addresses run here too: no call is needed to find those, and they are never missed.
Every SDK failure becomes an ``AdapterError``, as in the storyteller's adapters.
"""

from __future__ import annotations

import asyncio
import json
import weakref
from typing import Any

import httpx2
import openai
from django.conf import settings
from django.utils.translation import gettext, gettext_noop

from books.adapters.offline_moderator import find_concerns, verdict_for
from books.adapters.openai import _adapter_error, shared_client
from books.domain import Language
from books.ports import AdapterError, Concern, Moderator, Verdict

ModerationResult = dict[str, Any]
"""One input's result as the endpoint sends it: ``flagged`` and ``categories`` (name → bool)."""

# OpenAI's category names (as the API spells them) → ours.
CONCERNS = {
    "violence": Concern.VIOLENCE,
    "violence/graphic": Concern.VIOLENCE,
    "sexual": Concern.SEXUAL,
    "sexual/minors": Concern.SEXUAL,
    "self-harm": Concern.SELF_HARM,
    "self-harm/intent": Concern.SELF_HARM,
    "self-harm/instructions": Concern.SELF_HARM,
    "hate": Concern.HATE,
    "hate/threatening": Concern.HATE,
    "harassment": Concern.HATE,
    "harassment/threatening": Concern.HATE,
    "illicit": Concern.ILLICIT,
    "illicit/violent": Concern.ILLICIT,
}


class OpenAIModerator(Moderator):
    name = "openai"

    async def check(self, text: str, *, language: Language) -> Verdict:
        return _verdict_of(text, await _lane("generated").check(text))

    async def check_typed_words(self, text: str, *, language: Language) -> Verdict:
        # A lane of their own: the page does not start before the child's words are checked,
        # and behind a busy process's generated sentences they waited for a free request, up
        # to a whole round trip (bench/README.md).
        return _verdict_of(text, await _lane("typed").check(text))


def _verdict_of(text: str, result: ModerationResult) -> Verdict:
    categories = result.get("categories")
    raised = sorted(
        name for name, on in (categories.items() if isinstance(categories, dict) else ()) if on is True
    )
    found: dict[Concern, list[str]] = {}
    for name in raised:
        # A category the API adds later still holds the text back.
        found.setdefault(CONCERNS.get(name, Concern.ILLICIT), []).append(name)
    if result.get("flagged") is not False and not found:
        # Flagged, or an answer that does not say: held back rather than shown unchecked.
        found[Concern.ILLICIT] = ["flagged"]
    personal = find_concerns(text, only=Concern.PERSONAL_DETAILS).get(Concern.PERSONAL_DETAILS)
    if personal:
        found[Concern.PERSONAL_DETAILS] = personal
    return verdict_for(found)


class _Batches:
    """The process's checks, several texts to a request once requests start to queue up.

    Every sentence of every page is checked before it is shown; one request per sentence
    took half of a busy server's CPU (bench/README.md). Up to ``in_flight`` requests go out
    at once, each with what is waiting: a quiet process checks each text at once, a busy
    one sends many texts in one request (the endpoint judges each input on its own).

    A moderator slower to answer gets more requests at once: as many as keep about one
    going out every ``PACE_SECONDS`` (at most ``MOST_IN_FLIGHT``). A request on its way only
    waits, so this costs no more CPU than the same rate with a quick moderator; with only
    ``in_flight`` of them, every check waited up to a whole slow round trip for a free one.
    """

    MOST_PER_REQUEST = 32
    PACE_SECONDS = 0.025
    MOST_IN_FLIGHT = 16

    def __init__(self, in_flight: int) -> None:
        self.in_flight = in_flight
        self.round_trip = 0.0
        """Seconds a request takes, smoothed over the last few that were answered."""
        self.waiting: list[tuple[str, asyncio.Future[ModerationResult]]] = []
        self.senders: set[asyncio.Task[None]] = set()

    @property
    def limit(self) -> int:
        paced = int(self.round_trip / self.PACE_SECONDS)
        return max(self.in_flight, min(self.MOST_IN_FLIGHT, paced))

    async def check(self, text: str) -> ModerationResult:
        answer: asyncio.Future[ModerationResult] = asyncio.get_running_loop().create_future()
        self.waiting.append((text, answer))
        if len(self.senders) < self.limit:
            sender = asyncio.create_task(self._send_while_waiting(), name="moderation-batch")
            self.senders.add(sender)  # held here until it ends, so it is not collected mid-run
        return await answer

    def _answered_in(self, seconds: float) -> None:
        # Only answers count: a refusal (429) or a timeout must not send more requests.
        self.round_trip = seconds if not self.round_trip else 0.8 * self.round_trip + 0.2 * seconds

    async def _send_while_waiting(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            while self.waiting:
                batch = self.waiting[: self.MOST_PER_REQUEST]
                del self.waiting[: self.MOST_PER_REQUEST]
                sent = loop.time()
                try:
                    results = await _moderate([text for text, _ in batch])
                    self._answered_in(loop.time() - sent)
                except AdapterError as error:
                    for _, answer in batch:
                        if not answer.done():
                            answer.set_exception(error)
                    continue
                for (_, answer), result in zip(batch, results, strict=True):
                    if not answer.done():
                        answer.set_result(result)
        finally:
            # Out of the count the moment it stops taking texts. A done-callback would run only
            # after the checks it answered resume, and a check asked then would find every slot
            # taken and no sender coming: it would wait forever.
            self.senders.discard(asyncio.current_task())


async def _moderate(texts: list[str]) -> list[ModerationResult]:
    # The SDK makes the request (auth, retries, status errors) through its own ``post``, and the
    # answer is read as JSON here: ``moderations.create`` walks the parameters' type annotations
    # and builds typed results (three dicts of 13 categories each), half of the request's CPU.
    try:
        response = await shared_client().post(
            "/moderations",
            body={"model": settings.LITTLEWRITER["OPENAI_MODERATION_MODEL"], "input": texts},
            cast_to=httpx2.Response,
        )
        answer = json.loads(response.content)
    except openai.OpenAIError as error:
        raise _adapter_error(error, who=gettext_noop("safety check")) from error
    except ValueError as error:
        raise AdapterError(
            gettext("The %(who)s sent an answer that could not be read; try again.")
            % {"who": gettext("safety check")}
        ) from error
    results = answer.get("results") if isinstance(answer, dict) else None
    if not isinstance(results, list) or len(results) != len(texts):
        raise AdapterError(gettext("The safety check sent back no answer; try again."))
    return [result if isinstance(result, dict) else {} for result in results]


# The process's lanes of checks, each with its own requests, and how many of them each may have
# on their way at once (more when the moderator is slow: ``_Batches.limit``). Words a family
# typed are one check a page (about 16 a second at 50 live books), so with four a check of them
# rarely waits for a request.
LANES = {"generated": 2, "typed": 4}

_lanes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, _Batches]] = (
    weakref.WeakKeyDictionary()
)


def _lane(name: str) -> _Batches:
    lanes = _lanes.setdefault(asyncio.get_running_loop(), {})
    found = lanes.get(name)
    if found is None:
        found = lanes[name] = _Batches(LANES[name])
    return found
