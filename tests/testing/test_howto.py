"""The how-to on testing runs as written: each of its pytest files passes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.testing.support import run_suite

PAGE = Path(__file__).resolve().parents[2] / "docs" / "how-to" / "test-your-flows.md"
FILE = re.compile(r"^```python\n# (test_\w+)\.py\n(.*?)^```$", re.M | re.S)
EXAMPLES = dict(FILE.findall(PAGE.read_text(encoding="utf-8")))


def test_the_page_has_its_three_example_files() -> None:
    assert set(EXAMPLES) == {"test_my_flow", "test_my_checks", "test_my_backends"}


@pytest.mark.parametrize("module", sorted(EXAMPLES))
def test_an_example_file_passes(module: str, tmp_path: Path) -> None:
    outcomes = run_suite(tmp_path, module, EXAMPLES[module])
    assert "failed" not in outcomes.values(), outcomes
    assert "passed" in outcomes.values(), outcomes  # skips are only what a backend does not do
