"""Fixtures for the model server tests: the real tiny model, and servers over real HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch", reason="the model server tests need the 'model-server' extra (torch)")
pytest.importorskip("transformers", reason="the model server tests need the 'model-server' extra (transformers)")

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
# Tiny matrices: one thread avoids oversubscribing small CI machines (and keeps timings stable).
torch.set_num_threads(1)

STORIES = Path(__file__).resolve().parents[2].parent / "shared" / "models" / "stories260K"
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}{% if m['role'] == 'user' %}User: {{ m['content'] }}\n"
    "{% elif m['role'] == 'system' %}{{ m['content'] }}\n{% else %}{{ m['content'] }}\n{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}Once upon a time{% endif %}"
)


@pytest.fixture(scope="session")
def stories() -> Path:
    """The real tiny model in ../shared (never copied into the repo)."""
    if not STORIES.is_dir():
        pytest.fail(f"the test model is missing: {STORIES}")
    return STORIES


@pytest.fixture(scope="session")
def hf_model(stories: Path):  # type: ignore[no-untyped-def]
    """transformers' own model, the reference for greedy output."""
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(stories)).eval()


@pytest.fixture(scope="session")
def tokenizer(stories: Path):  # type: ignore[no-untyped-def]
    from agentflow.model_server.tokenizer import Tokenizer

    return Tokenizer.load(stories)


def hf_greedy(hf_model, tokenizer, prompt: str, tokens: int) -> tuple[list[int], str]:  # type: ignore[no-untyped-def]
    """transformers ``generate`` (greedy, stopping on the model's EOS ids): new ids and their text."""
    ids = tokenizer.encode(prompt)
    with torch.inference_mode():
        out = hf_model.generate(torch.tensor([ids]), max_new_tokens=tokens, do_sample=False)
    new = out[0, len(ids):].tolist()
    while new and new[-1] in (1, 2):
        new.pop()
    full = tokenizer.decode(ids + new)
    return new, full[len(tokenizer.decode(ids)):]


@dataclass
class Served:
    """A model server run by uvicorn in a background thread."""

    url: str
    runtime: object

    @property
    def base(self) -> str:
        return self.url + "/v1"


def serve(model_dir: Path, **settings: object) -> Iterator[Served]:
    """Start a server on a free port of 127.0.0.1; yield it; stop it."""
    import uvicorn

    from agentflow.model_server.runtime import ServerSettings, load_server
    from agentflow.model_server.server import create_app

    runtime = load_server(ServerSettings(model_dir=model_dir, device="cpu", port=0, **settings))  # type: ignore[arg-type]
    config = uvicorn.Config(create_app(runtime), host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60  # a model with an adapter merges it at load
    while not (server.started and server.servers):
        if time.monotonic() > deadline:
            raise RuntimeError("the server did not start within 60 s")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield Served(f"http://127.0.0.1:{port}", runtime)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def server(stories: Path) -> Iterator[Served]:
    """The default server: stories260K, 16 slots."""
    yield from serve(stories, max_batch=16, queue_limit=256)


@pytest.fixture(scope="module")
def chat_server(stories: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """stories260K with a chat template added (a temporary copy; the weights are symlinked)."""
    root = tmp_path_factory.mktemp("chat") / "stories260K-chat"
    root.mkdir()
    for item in stories.iterdir():
        if item.name == "tokenizer_config.json":
            continue
        (root / item.name).symlink_to(item)
    cfg = json.loads((stories / "tokenizer_config.json").read_text())
    cfg["chat_template"] = CHAT_TEMPLATE
    (root / "tokenizer_config.json").write_text(json.dumps(cfg))
    yield from serve(root, max_batch=8, served_names=("default",))
