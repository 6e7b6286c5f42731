"""The OpenAI moderator: OpenAI's moderation endpoint, through the shared client.

OpenAI's categories are mapped onto ours (``books.ports.Concern``). The endpoint does not
look for personal details, so the offline moderator's rules for phone numbers, e-mail and
street addresses run here too: no call is needed to find those, and they are never missed.
Every SDK failure becomes an ``AdapterError``, as in the storyteller's adapters.
"""

from __future__ import annotations

import openai
from django.conf import settings

from books.adapters.offline_moderator import find_concerns, verdict_for
from books.adapters.openai import _adapter_error, shared_client
from books.domain import Language
from books.ports import AdapterError, Concern, Moderator, Verdict

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
        try:
            response = await shared_client().moderations.create(
                model=settings.LITTLEWRITER["OPENAI_MODERATION_MODEL"], input=text
            )
        except openai.OpenAIError as error:
            raise _adapter_error(error, who="safety check") from error
        if not response.results:
            raise AdapterError("The safety check sent back no answer; try again.")
        result = response.results[0]
        raised = sorted(
            name for name, on in result.categories.model_dump(by_alias=True).items() if on is True
        )
        found: dict[Concern, list[str]] = {}
        for name in raised:
            # A category the API adds later still holds the text back.
            found.setdefault(CONCERNS.get(name, Concern.ILLICIT), []).append(name)
        if result.flagged and not found:
            found[Concern.ILLICIT] = ["flagged"]
        personal = find_concerns(text).get(Concern.PERSONAL_DETAILS)
        if personal:
            found[Concern.PERSONAL_DETAILS] = personal
        return verdict_for(found)
