"""The bench's safety figure: story text on a socket that no moderator answer had cleared."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench" / "live_pages.py"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("live_pages_under_test", BENCH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


STORY = "Mia found a small red boat. It sailed to the moon. The end."


def test_first_text_is_timed_from_the_answer_that_cleared_it(bench: ModuleType) -> None:
    checks = [(10.0, 27), (10.5, 50), (11.0, len(STORY))]  # (answered, characters read)
    shown = [(9.0, 0), (10.02, 27), (10.53, 50), (11.05, len(STORY))]  # (arrived, story length)

    first, unchecked = bench.after_checks(shown, checks)

    assert first == pytest.approx(0.02)
    assert unchecked == 0


def test_text_shown_before_its_answer_is_counted(bench: ModuleType) -> None:
    checks = [(10.0, 27), (10.5, 50)]
    # The second sentence arrives before the answer that reads it; the last is never read.
    shown = [(10.02, 27), (10.3, 50), (10.6, len(STORY))]

    first, unchecked = bench.after_checks(shown, checks)

    assert first == pytest.approx(0.02)
    assert unchecked == 2


def test_checks_are_matched_to_the_story_they_read(bench: ModuleType, tmp_path: Path) -> None:
    other = "Mia found a big green kite. It flew away."
    log = tmp_path / "upstream.log"
    entries = [
        {"book": "lwb-x-1", "section": "story", "text": STORY},
        {"book": "", "section": "moderation", "answered": 2.0, "texts": [STORY[:27], other[:27]]},
        {"book": "", "section": "moderation", "answered": 1.0, "texts": ["a dragon please"]},
        {"book": "", "section": "moderation", "answered": 3.0, "texts": [STORY]},
    ]
    log.write_text("".join(json.dumps(entry) + "\n" for entry in entries))

    found = bench.read_story_checks(log, {"lwb-x-1": STORY, "lwb-x-2": other})

    assert found == {"lwb-x-1": [(2.0, 27), (3.0, len(STORY))], "lwb-x-2": [(2.0, 27)]}
