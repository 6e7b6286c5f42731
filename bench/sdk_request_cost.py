"""What one small OpenAI request costs the server's CPU, by way of calling the SDK.

Not a test: it prints CPU per moderation request (one input, 20 in flight) against the same
scripted upstream as live_pages.py (each answer after 50 ms), in a fresh process per way:

* ``typed``: ``moderations.create`` with its typed result, on the SDK's default httpx2 layer;
* ``typed-aiohttp``: the same on the SDK's aiohttp layer (``openai[aiohttp]``);
* ``post-json``: the SDK's ``post()`` with the answer read as JSON, on httpx2;
* ``post-json-aiohttp``: that on aiohttp, as ``books/adapters/openai_moderator.py`` does.

Also what the SDK's parameter transform costs for a story request (``chat.completions.create``
walks the parameters' type annotations before sending; the adapters' ``post()`` does not).

    .venv/bin/python bench/sdk_request_cost.py
"""

from __future__ import annotations

import asyncio
import json
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = str(ROOT / ".venv" / "bin" / "python")
LIVE_PAGES = str(ROOT / "bench" / "live_pages.py")
REQUESTS = 1500
IN_FLIGHT = 20
TEXT = "Once upon a time a little fox hopped over a puddle and giggled."


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def client(base_url: str, aiohttp: bool) -> Any:
    from openai import AsyncOpenAI, DefaultAioHttpClient

    http_client = DefaultAioHttpClient(timeout=60) if aiohttp else None
    return AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0, http_client=http_client)


async def one_way(way: str, base_url: str) -> None:
    import httpx2

    sdk = client(base_url, aiohttp=way.endswith("aiohttp"))

    async def typed() -> None:
        answer = await sdk.moderations.create(model="omni-moderation-latest", input=[TEXT])
        answer.results[0].categories.model_dump(by_alias=True)

    async def post_json() -> None:
        body = {"model": "omni-moderation-latest", "input": [TEXT]}
        response = await sdk.post("/moderations", body=body, cast_to=httpx2.Response)
        json.loads(response.content)

    request = typed if way.startswith("typed") else post_json
    for _ in range(50):
        await request()  # imports, connections and caches first
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def gated() -> None:
        async with gate:
            await request()

    before, started = cpu_seconds(), time.monotonic()
    await asyncio.gather(*(gated() for _ in range(REQUESTS)))
    cpu, wall = cpu_seconds() - before, time.monotonic() - started
    print(f"  {way:18s} {1e3 * cpu / REQUESTS:5.2f} ms of CPU a request ({REQUESTS / wall:4.0f} requests/s)")
    await sdk.close()


async def transform_cost() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from openai._utils import async_maybe_transform
    from openai.types.chat import completion_create_params

    from books.adapters.openai import story_messages
    from books.domain import Character, Language
    from books.ports import PageSoFar, StoryContext

    context = StoryContext(
        characters=(Character("Mina", "a curious girl with a yellow raincoat"),),
        language=Language.ENGLISH,
        page_number=2,
        page_count=4,
        pages_so_far=(PageSoFar(1, "Mina and Bori found a map under the old oak tree."),),
        child_input="they follow the map to a river of lemonade",
    )
    body = {"model": "gpt-4o-mini", "messages": story_messages(context), "stream": True}
    rounds = 300
    before = cpu_seconds()
    for _ in range(rounds):
        await async_maybe_transform(body, completion_create_params.CompletionCreateParamsStreaming)
    each = (cpu_seconds() - before) / rounds
    print(f"  chat.completions.create's parameter transform for a story request: {1e3 * each:.2f} ms of CPU")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_way":
        asyncio.run(one_way(sys.argv[2], sys.argv[3]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_transform":
        asyncio.run(transform_cost())
        return
    sys.path.insert(0, str(ROOT / "bench"))
    from live_pages import scripted_upstream

    with scripted_upstream() as base_url:
        print(f"moderation requests, {IN_FLIGHT} in flight, one input each:")
        for way in ("typed", "typed-aiohttp", "post-json", "post-json-aiohttp"):
            subprocess.run([PYTHON, __file__, "_way", way, base_url], check=True, timeout=300)
        measured = subprocess.run(
            [PYTHON, __file__, "_transform"],
            check=False,
            timeout=120,
            env={"DJANGO_SETTINGS_MODULE": "littlewriter.settings", "PATH": "/usr/bin:/bin"},
            cwd=ROOT,
        )
        if measured.returncode != 0:
            print("  (the transform measurement failed; see above)")


if __name__ == "__main__":
    main()
