"""Fixtures for the fine-tuning tests: the real tiny models, model servers over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.model_server.conftest import Served
from tests.model_server.conftest import serve as serve_model

torch = pytest.importorskip("torch", reason="the tune tests need the 'tune' extra (torch)")
pytest.importorskip("peft", reason="the tune tests need the 'tune' extra (peft)")

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
torch.set_num_threads(1)  # tiny matrices: one thread avoids oversubscribing small CI machines

STORIES = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "stories260K"


@pytest.fixture(scope="session")
def stories() -> Path:
    """The real tiny model in ../shared (never copied into the repo)."""
    if not STORIES.is_dir():
        pytest.fail(f"the test model is missing: {STORIES}")
    return STORIES


def serve(model: Path | str, **settings: object) -> Iterator[Served]:
    """Load ``model`` (a folder, a packaged name, ``BASE+ADAPTER``) into a model server on a free port of
    127.0.0.1, one thread; yield it; stop it."""
    yield from serve_model(Path(model), threads=1, **settings)
