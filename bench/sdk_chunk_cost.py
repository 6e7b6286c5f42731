"""What one streamed chunk costs the server's event loop to receive, by client; and one AsyncOpenAI().

Not a test: it prints CPU per chunk for N concurrent story streams from the same scripted
upstream as live_pages.py (91 chunks at 50 tokens/s each), read four ways, each in its own
fresh process: the OpenAI SDK's typed stream (its default httpx2 layer), the SDK as the
adapters use it (``post()`` on the SDK's aiohttp layer, events read as JSON), httpx2 (what
the SDK sits on by default) with ``json.loads``, and plain asyncio streams with ``json.loads``.

    .venv/bin/python bench/sdk_chunk_cost.py            # 10, 50 and 200 streams
    .venv/bin/python bench/sdk_chunk_cost.py 50
"""

from __future__ import annotations

import asyncio
import contextlib
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
MESSAGES = [{"role": "system", "content": "You write one page"}]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def through_sdk(base_url: str, streams: int) -> int:
    from openai import AsyncOpenAI

    client = AsyncOpenAI(api_key="bench", base_url=base_url, max_retries=0)

    async def one(index: int) -> int:
        messages: Any = [*MESSAGES, {"role": "user", "content": f"lwb-cost-{index}"}]
        stream = await client.chat.completions.create(model="m", messages=messages, stream=True)
        chunks = 0
        async with stream:
            async for _ in stream:
                chunks += 1
        return chunks

    await one(0)
    return await measure(streams, one)


async def through_sdk_aiohttp(base_url: str, streams: int) -> int:
    """As the adapters read a story: the SDK's post() on aiohttp, server-sent events read as JSON."""
    import httpx2
    from openai import AsyncOpenAI, DefaultAioHttpClient

    sys.path.insert(0, str(ROOT))
    from books.adapters.openai import _server_sent_chunks

    client = AsyncOpenAI(
        api_key="bench", base_url=base_url, max_retries=0, http_client=DefaultAioHttpClient(timeout=60)
    )

    async def one(index: int) -> int:
        body = {
            "model": "m",
            "stream": True,
            "messages": [*MESSAGES, {"role": "user", "content": f"lwb-cost-{index}"}],
        }
        response = await client.post("/chat/completions", body=body, cast_to=httpx2.Response, stream=True)
        chunks = 0
        async with contextlib.aclosing(response):
            async for _ in _server_sent_chunks(response.aiter_bytes()):
                chunks += 1
        return chunks

    await one(0)
    try:
        return await measure(streams, one)
    finally:
        await client.close()


async def through_httpx(base_url: str, streams: int) -> int:
    import httpx2

    client = httpx2.AsyncClient(timeout=60, trust_env=False, limits=httpx2.Limits(max_connections=1000))

    async def one(index: int) -> int:
        body = {
            "model": "m",
            "stream": True,
            "messages": [*MESSAGES, {"role": "user", "content": f"lwb-cost-{index}"}],
        }
        chunks = 0
        async with client.stream("POST", f"{base_url}/chat/completions", json=body) as response:
            async for line in response.aiter_lines():
                if line.startswith("data: {"):
                    json.loads(line[6:])
                    chunks += 1
        return chunks

    await one(0)
    return await measure(streams, one)


async def through_asyncio(base_url: str, streams: int) -> int:
    port = int(base_url.rsplit(":", 1)[1].split("/")[0])

    async def one(index: int) -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        body = json.dumps(
            {
                "model": "m",
                "stream": True,
                "messages": [*MESSAGES, {"role": "user", "content": f"lwb-cost-{index}"}],
            }
        ).encode()
        writer.write(
            b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
        )
        chunks = 0
        async for line in reader:
            if line.startswith(b"data: {"):
                json.loads(line[6:])
                chunks += 1
        writer.close()
        return chunks

    await one(0)
    return await measure(streams, one)


async def measure(streams: int, one: Any) -> int:
    before, started = cpu_seconds(), time.monotonic()
    counts = await asyncio.wait_for(asyncio.gather(*(one(i) for i in range(streams))), timeout=120)
    cpu, wall = cpu_seconds() - before, time.monotonic() - started
    chunks = sum(counts)
    print(
        f"    {streams:4d} streams, {chunks:6d} chunks in {wall:4.1f} s:"
        f" {1e6 * cpu / chunks:4.0f} µs CPU a chunk, {100 * cpu / wall:3.0f}% of a core"
    )
    return chunks


def client_cost() -> None:
    from openai import AsyncOpenAI

    AsyncOpenAI(api_key="bench", base_url="http://127.0.0.1:9/v1")  # imports and first-use caches
    before = time.perf_counter()
    for _ in range(10):
        AsyncOpenAI(api_key="bench", base_url="http://127.0.0.1:9/v1", max_retries=0)
    each = (time.perf_counter() - before) / 10
    print(
        f"AsyncOpenAI() for an http:// base URL: {1000 * each:.1f} ms of CPU each (it builds an SSL context)"
    )


def main() -> None:
    ways = {
        "sdk": through_sdk,
        "sdk-aiohttp-json": through_sdk_aiohttp,
        "httpx": through_httpx,
        "asyncio": through_asyncio,
    }
    if len(sys.argv) > 1 and sys.argv[1] == "_way":
        asyncio.run(ways[sys.argv[2]](sys.argv[3], int(sys.argv[4])))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_client":
        client_cost()
        return
    counts = [int(n) for n in sys.argv[1:]] or [10, 50, 200]
    sys.path.insert(0, str(ROOT / "bench"))
    from live_pages import scripted_upstream

    with scripted_upstream() as base_url:
        subprocess.run([PYTHON, __file__, "_client"], check=True, timeout=120)
        for way in ways:
            print(f"{way}:")
            for streams in counts:
                subprocess.run(
                    [PYTHON, __file__, "_way", way, base_url, str(streams)], check=True, timeout=300
                )


if __name__ == "__main__":
    main()
