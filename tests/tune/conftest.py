"""Fixtures for the fine-tuning tests: the real tiny models, nodes served over real HTTP on 127.0.0.1."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

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


@dataclass
class Served:
    """A node served by uvicorn in a background thread."""

    url: str
    runtime: object


def serve(model: Path | str, **settings: object) -> Iterator[Served]:
    """Load ``model`` into a node on a free port of 127.0.0.1 (the node's own loading path); yield it; stop it."""
    import uvicorn

    from agentflow.serve.runtime import NodeSettings, load_node
    from agentflow.serve.server import create_app

    runtime = load_node(NodeSettings(model_dir=Path(model), device="cpu", port=0, threads=1, **settings))  # type: ignore[arg-type]
    server = uvicorn.Server(uvicorn.Config(create_app(runtime), host="127.0.0.1", port=0, log_level="warning",
                                           lifespan="on"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not (server.started and server.servers):
        if time.monotonic() > deadline:
            raise RuntimeError("the node did not start within 60 s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
