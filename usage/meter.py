"""What each section of a page used upstream: tokens in and out, pictures drawn.

The ports stream plain text pieces (``AsyncIterator[str]``) and return a ``Picture``; the
figures arrive inside the provider's answer, at the end of a stream. Rather than change
every port's shape (and every adapter, test double and the parent's-words writer with it)
to carry them, the pipeline opens a ``Reading`` per section in a context variable and the
adapter adds what it learns to ``count()``. Each section runs in its own asyncio task and
a task copies its context when it starts, so concurrent sections never see each other's
reading, and an adapter used outside a metered section counts into nothing.

Plain Python: no Django here, so adapters and the pipeline can use it freely.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field


@dataclass
class Reading:
    """What one section used in one run; ``adapter`` stays empty when none reported (the parent's words)."""

    adapter: str = ""
    model: str = ""
    input_tokens: int = 0
    output_tokens: int = 0
    pictures: int = 0

    @property
    def reported(self) -> bool:
        return bool(self.adapter)


@dataclass
class PageMeter:
    """The readings of one run of a page, one per section that ran."""

    readings: dict[str, Reading] = field(default_factory=dict)

    @contextmanager
    def section(self, name: str) -> Iterator[Reading]:
        reading = self.readings.setdefault(name, Reading())
        token = _current.set(reading)
        try:
            yield reading
        finally:
            _current.reset(token)


_current: ContextVar[Reading | None] = ContextVar("littlewriter_usage_reading", default=None)


def count(
    *, adapter: str, model: str = "", input_tokens: int = 0, output_tokens: int = 0, pictures: int = 0
) -> None:
    """Add what an upstream call used to the current section's reading (nothing outside one)."""
    reading = _current.get()
    if reading is None:
        return
    reading.adapter = adapter
    reading.model = model or reading.model
    reading.input_tokens += max(input_tokens, 0)
    reading.output_tokens += max(output_tokens, 0)
    reading.pictures += max(pictures, 0)
