"""Fixtures shared by the modules that start page runs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from streaming import live, runs


@pytest.fixture(autouse=True)
async def no_run_left_behind() -> AsyncIterator[None]:
    """Stop a run a failed test left going, and let go of this test's Redis connections."""
    yield
    for draft_id, run in list(runs._running.items()):
        run.cancel()
        await runs.settle(draft_id)
    found = live._hubs.get(asyncio.get_running_loop())
    if isinstance(found, live.RedisHub):
        await found.close()
