"""What one HTTP request costs the server's CPU, by the ASGI handler that serves it.

Not a test: it prints CPU per request for three signed-in requests (a 404, "My books", and
the finished ``#book`` htmx fetches after a run), 1000 of each, 8 at a time, fed straight
to the ASGI application in this process (no sockets). Each handler runs in a fresh
process:

* ``django``: Django's own ``ASGIHandler`` with ``CONN_MAX_AGE=0``, as before 2026-12-02:
  a new thread and database connection per request, five loop/thread crossings;
* ``pooled``: worker threads lent from a pool, connections kept (60 s), Django's async
  request path unchanged;
* ``one-trip``: the app's ``PooledThreadsASGIHandler`` (``littlewriter/request_threads.py``):
  pooled threads, and the signal, request, sync middleware chain and view in one trip.

    .venv/bin/python bench/request_cost.py                    # MariaDB + Redis (as live_pages.py uses them)
    .venv/bin/python bench/request_cost.py --config embedded  # SQLite, the database cache
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from sdk_request_cost import cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
PYTHON = str(ROOT / ".venv" / "bin" / "python")
HANDLERS = ("django", "pooled", "one-trip")
PATHS = ("404", "mine", "book")
REQUESTS = 1000
IN_FLIGHT = 8


def environment(config: str, var_dir: str, conn_max_age: int) -> dict[str, str]:
    from live_pages import MYSQL_DATABASE, REDIS_URL, environment_without_the_apps

    env = environment_without_the_apps()
    env.update(
        DJANGO_SETTINGS_MODULE="littlewriter.settings",
        DJANGO_DEBUG="false",
        DJANGO_SECRET_KEY="request-cost-bench-" + "x" * 40,
        LW_VAR_DIR=var_dir,
        LW_FAST_PASSWORD_HASHER="1",
        LW_CACHE_PREFIX="lw-bench-rc",
        DATABASE_CONN_MAX_AGE=str(conn_max_age),
        PYTHONPATH=str(ROOT),
    )
    if config == "redis":
        env.update(DATABASE_URL=f"mysql://root@127.0.0.1:3306/{MYSQL_DATABASE}", REDIS_URL=REDIS_URL)
    return env


def application(handler: str) -> Any:
    from django.core.handlers.asgi import ASGIHandler

    from littlewriter.request_threads import PooledThreadsASGIHandler

    if handler == "django":
        return ASGIHandler()
    if handler == "one-trip":
        return PooledThreadsASGIHandler()

    class PooledOnly(PooledThreadsASGIHandler):
        """Pooled threads with Django's own async request path (what ``470a955`` ran)."""

        def __init__(self) -> None:
            super().__init__()
            self.load_middleware(is_async=True)

        async def handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
            await ASGIHandler.handle(self, scope, receive, send)

    return PooledOnly()


def a_signed_in_family_with_a_page() -> tuple[bytes, str]:
    """A parent, a child, a draft with its first page made (offline storyteller), a session."""
    from asgiref.sync import async_to_sync
    from django.contrib.auth import get_user_model
    from django.test import Client

    from books import drafts, services
    from families.models import Child

    parent, _ = get_user_model().objects.get_or_create(username="request-cost-parent")
    child = Child.objects.filter(parent=parent).first() or Child.objects.create(
        parent_id=parent.pk, nickname="Sunny", age_band="6-8"
    )
    old = drafts.current(parent.pk)
    if old is not None:
        drafts.delete(old)
    draft = services.start_book(
        user_id=parent.pk,
        child_id=child.pk,
        characters=[("Mina", "a brave cat")],
        page_count=3,
        language="en",
    )
    async_to_sync(services.make_next_page)(
        user_id=parent.pk, draft_id=draft.draft_id, page_number=1, child_input="Mina finds a door"
    )
    client = Client()
    client.force_login(parent)
    return f"sessionid={client.cookies['sessionid'].value}".encode(), draft.draft_id


async def request(app: Any, path: str, headers: list[tuple[bytes, bytes]]) -> int:
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 80),
    }
    body_sent = asyncio.Event()
    inbox = [{"type": "http.request", "body": b"", "more_body": False}]
    status = 0

    async def receive() -> dict[str, Any]:
        if inbox:
            return inbox.pop()
        await body_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]
        elif not message.get("more_body"):
            body_sent.set()

    await app(scope, receive, send)
    return status


def measure(handler: str) -> None:
    """The child process: set up, warm up, then print "path ms-per-request" lines."""
    import django

    django.setup(set_prefix=False)
    cookie, draft_id = a_signed_in_family_with_a_page()
    from django.db import connections

    connections.close_all()
    app = application(handler)
    signed_in = [(b"host", b"127.0.0.1"), (b"cookie", cookie)]
    htmx = [*signed_in, (b"hx-request", b"true"), (b"hx-target", b"book")]
    cases = {
        "404": (f"/no-such-page-{draft_id}/", signed_in, 404),
        "mine": ("/mine/", signed_in, 200),
        "book": (f"/drafts/{draft_id}/", htmx, 200),
    }

    async def main() -> None:
        for name, (path, headers, expected) in cases.items():
            for _ in range(50):
                status = await request(app, path, headers)
                assert status == expected, f"{name}: HTTP {status}, not {expected}"
            in_flight = asyncio.Semaphore(IN_FLIGHT)

            async def one(
                path: str = path,
                headers: list[tuple[bytes, bytes]] = headers,
                in_flight: asyncio.Semaphore = in_flight,
            ) -> None:
                async with in_flight:
                    await request(app, path, headers)

            start = cpu_seconds()
            await asyncio.gather(*(one() for _ in range(REQUESTS)))
            print(name, (cpu_seconds() - start) / REQUESTS * 1000, flush=True)

    asyncio.run(main())


def prepare(config: str, var_dir: str) -> None:
    from live_pages import prepare_mysql, run_quietly

    env = environment(config, var_dir, 0)
    if config == "redis":
        prepare_mysql(env, connections=0)
    else:
        run_quietly([PYTHON, "manage.py", "migrate", "--noinput"], env, 600, "migrate (SQLite)")
        run_quietly([PYTHON, "manage.py", "createcachetable"], env, 120, "createcachetable")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", choices=("redis", "embedded"), default="redis")
    parser.add_argument("--rounds", type=int, default=2, help="runs of every handler, interleaved")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="lw-request-cost-") as var_dir:
        prepare(args.config, var_dir)
        figures: dict[str, dict[str, list[float]]] = {h: {p: [] for p in PATHS} for h in HANDLERS}
        for _ in range(args.rounds):
            for handler in HANDLERS:
                env = environment(args.config, var_dir, 0 if handler == "django" else 60)
                done = subprocess.run(
                    [PYTHON, __file__, "_measure", handler],
                    env=env,
                    cwd=ROOT,
                    capture_output=True,
                    text=True,
                    timeout=600,
                    check=False,
                )
                if done.returncode != 0:
                    sys.exit(f"the {handler} run failed:\n{done.stderr[-3000:]}")
                for line in done.stdout.splitlines():
                    name, value = line.split()
                    figures[handler][name].append(float(value))
    print(f"CPU ms per request ({args.config}; {REQUESTS} each, {IN_FLIGHT} in flight; every run shown)")
    print(f"{'handler':10} " + " ".join(f"{p:>16}" for p in ("404 (signed in)", "/mine/", "#book (htmx)")))
    for handler in HANDLERS:
        cells = [", ".join(f"{v:.2f}" for v in figures[handler][p]) for p in PATHS]
        print(f"{handler:10} " + " ".join(f"{c:>16}" for c in cells))


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_measure":
        measure(sys.argv[2])
    else:
        main()
