"""Run the examples as a user would, each time from a project folder of its own, so the runs'
``.agentflow/`` (traces, store, evaluations) never lands in the checkout."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    """``python ARGS`` in a fresh folder, with the checkout importable (``examples.*``)."""
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    with tempfile.TemporaryDirectory(prefix="agentflow-example-") as project:
        return subprocess.run([sys.executable, *args], cwd=project, capture_output=True, text=True,
                              timeout=300, stdin=subprocess.DEVNULL, env=env)
