"""The package's layers point one way (the contracts in pyproject.toml, checked by import-linter):
the CLI on top; workflow servers, the viewer and fine-tuning; evaluation; the YAML spec; node
types; the engine; checks and prompts; retrieval; models; tracing; plain data and errors at the
bottom. The model server (agentflow.model_server) imports nothing else of agentflow."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports", path=str(Path(sys.executable).parent))
    assert exe, "import-linter is part of the test extra (pip install -e '.[test]')"
    proc = subprocess.run([exe, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    assert "0 broken" in proc.stdout
