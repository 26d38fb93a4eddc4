"""Running a contract suite on a test module written on the fly, in this process."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest


class _Outcomes:
    """A pytest plugin that keeps each test's outcome (a failing setup counts as failed)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, str] = {}

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        name = report.nodeid.split("::")[-1]
        if self.outcomes.get(name) == "failed":
            return  # a test whose call failed stays failed whatever its teardown does
        if report.when == "call" or report.outcome != "passed":
            self.outcomes[name] = report.outcome


def run_suite(tmp_path: Path, module: str, source: str) -> dict[str, str]:
    """Run the tests of ``source`` (written to ``<tmp_path>/<module>.py``) with pytest, in this
    process; returns each test's outcome by name (``passed``, ``failed`` or ``skipped``)."""
    folder = tmp_path / module
    folder.mkdir()
    (folder / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    path = folder / f"{module}.py"
    path.write_text(textwrap.dedent(source), encoding="utf-8")
    plugin = _Outcomes()
    pytest.main([str(path), "-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                 f"--rootdir={folder}", "-W", "ignore::DeprecationWarning"], plugins=[plugin])
    assert plugin.outcomes, f"no test ran in {path}"
    return plugin.outcomes


def failed(outcomes: dict[str, str]) -> set[str]:
    """The tests that failed, parametrized ones by their function name."""
    return {name.split("[")[0] for name, outcome in outcomes.items() if outcome == "failed"}
