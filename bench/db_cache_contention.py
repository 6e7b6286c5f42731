"""Evidence for the embedded configuration's failures in live_pages.py: Django's database cache
on SQLite loses writes silently under concurrency, and culls live entries past MAX_ENTRIES.

Not a test: it prints what it saw, in a temporary LW_VAR_DIR (SQLite + database cache).

    .venv/bin/python bench/db_cache_contention.py            # 10, 50 and 200 threads
    .venv/bin/python bench/db_cache_contention.py 50

``DatabaseCache._base_set`` catches ``DatabaseError`` ("database is locked") and returns
False, so ``cache.set`` (a draft save), ``cache.add`` (the generation lock) and
``cache.touch`` (the lock's heartbeat) fail without an exception. With SQLite's default
deferred transactions this lost 3 of 30 writes at 10 threads and 124 of 150 at 50 (2026-11-22);
``transaction_mode: IMMEDIATE`` (settings.py, added while this bench was written) brings that
to 0. The second part is independent of it: the database cache keeps at most MAX_ENTRIES
(300 by default) entries and culls a third of them, live drafts included, past that.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def child(threads: int) -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.cache import cache
    from django.db import connection

    run = str(time.time_ns())
    lost: list[str] = []
    barrier = threading.Barrier(threads)

    def family(index: int) -> None:
        barrier.wait()
        try:
            cache.set(f"draft:{run}:{index}", {"page": index}, 3600)
            if cache.get(f"draft:{run}:{index}") is None:
                lost.append("set")
            if not cache.add(f"lock:{run}:{index}", "token", 30):
                lost.append("add")
            if not cache.touch(f"lock:{run}:{index}", 30):
                lost.append("touch")
        finally:
            connection.close()

    workers = [threading.Thread(target=family, args=(i,)) for i in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    kinds = {kind: lost.count(kind) for kind in ("set", "add", "touch")}
    print(f"{threads:4d} families at once: {len(lost)} of {3 * threads} cache writes lost silently {kinds}")


def cull() -> None:
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.cache import cache

    cache.clear()
    for index in range(400):
        cache.set(f"draft:user:{index}", {"page": index}, 72 * 3600)
    kept = sum(cache.get(f"draft:user:{index}") is not None for index in range(400))
    print(f"400 drafts saved one after another (72 h TTL): {kept} still there (MAX_ENTRIES defaults to 300)")


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "_child":
        child(int(sys.argv[2]))
        return
    if len(sys.argv) > 1 and sys.argv[1] == "_cull":
        cull()
        return
    counts = [int(n) for n in sys.argv[1:]] or [10, 50, 200]
    with tempfile.TemporaryDirectory(prefix="lw-dbcache-") as var:
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("DJANGO_", "LW_", "REDIS_", "DATABASE_"))
        }
        env.update(DJANGO_SETTINGS_MODULE="littlewriter.settings", LW_VAR_DIR=var, PYTHONPATH=str(ROOT))
        python = str(ROOT / ".venv" / "bin" / "python")
        for command in (["migrate", "--noinput", "-v0"], ["createcachetable"]):
            subprocess.run([python, "manage.py", *command], cwd=ROOT, env=env, check=True, timeout=300)
        for threads in counts:
            subprocess.run(
                [python, __file__, "_child", str(threads)], cwd=ROOT, env=env, check=True, timeout=300
            )
        subprocess.run([python, __file__, "_cull"], cwd=ROOT, env=env, check=True, timeout=300)


if __name__ == "__main__":
    main()
