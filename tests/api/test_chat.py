"""The OpenAI-compatible endpoint with real clients: the openai SDK and LangChain's ChatOpenAI, against a
real uvicorn server; the reference workflow's citations travel in the reply."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_openai import ChatOpenAI

from agentflow.api.server import ServerThread
from agentflow.api.settings import ServeSettings
from tests.api.conftest import Served
from tests.cli.test_run_routes import (
    GARDEN,  # two small documents: tomatoes and compost
)

ROOT = Path(__file__).resolve().parents[2]


def _client(served: Served) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{served.url}/v1", api_key="unused", max_retries=0)


def test_the_openai_sdk_lists_the_workflows_as_models(served: Served) -> None:
    models = {m.id for m in _client(served).models.list()}
    assert models == {"echo", "slow", "flaky", "timeout"}


def test_the_openai_sdk_gets_the_workflows_answer_with_its_citations(served: Served) -> None:
    client = _client(served)
    reply = client.chat.completions.create(model="echo", user="ana", messages=[
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "turn 1: first"},
        {"role": "user", "content": "second"}])
    text = reply.choices[0].message.content
    assert text == "turn 2: second (n=1) [DOC 1]\n\nSources:\n[DOC 1] docs/echo.md"
    assert reply.choices[0].finish_reason == "stop" and reply.model == "echo"
    extra = reply.model_extra or {}
    assert extra["citations"] == ["docs/echo.md"]
    assert extra["agentflow"]["citations"] == [{"doc": 1, "source": "docs/echo.md", "quote": "echo"}]
    assert extra["agentflow"]["outputs"]["said"] == ["first", "turn 1: first"]  # the system message left out
    run_id = extra["agentflow"]["run_id"]
    with served.client() as http:  # the run id is what feedback takes
        assert http.post(f"/runs/{run_id}/feedback", json={"score": "up"}).status_code == 201
        assert http.get(f"/runs/{run_id}").json()["tags"] == {"origin": "serve", "user": "ana"}


def test_the_openai_sdk_streams_the_reply(served: Served) -> None:
    stream = _client(served).chat.completions.create(
        model="echo", stream=True, stream_options={"include_usage": True},
        messages=[{"role": "user", "content": [{"type": "text", "text": "stream me"}]}])
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "turn 1: stream me (n=1) [DOC 1]\n\nSources:\n[DOC 1] docs/echo.md"
    assert chunks[0].choices[0].delta.role == "assistant"
    last = [c for c in chunks if c.choices][-1]
    assert last.choices[0].finish_reason == "stop"
    assert (last.model_extra or {})["citations"] == ["docs/echo.md"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert len({c.id for c in chunks}) == 1


def test_the_openai_sdk_gets_openai_errors(served: Served) -> None:
    client = _client(served)
    with pytest.raises(openai.NotFoundError) as missing:
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "x"}])
    assert "no workflow 'nope'" in str(missing.value)
    with pytest.raises(openai.BadRequestError) as no_user:
        client.chat.completions.create(model="echo", messages=[{"role": "assistant", "content": "x"}])
    assert "no user message" in str(no_user.value)
    with pytest.raises(openai.APIStatusError) as timeout:
        client.chat.completions.create(model="timeout", messages=[{"role": "user", "content": "x"}])
    assert timeout.value.status_code == 504 and "timeout" in str(timeout.value).lower()


def test_langchain_chatopenai_invokes_and_streams_a_workflow(served: Served) -> None:
    llm = ChatOpenAI(model="echo", base_url=f"{served.url}/v1", api_key="unused", max_retries=0)
    message = llm.invoke([HumanMessage("hello"), AIMessage("turn 1: hello"), HumanMessage("again")])
    assert message.content == "turn 2: again (n=1) [DOC 1]\n\nSources:\n[DOC 1] docs/echo.md"
    assert message.response_metadata["model_name"] == "echo"
    streamed = "".join(str(chunk.content) for chunk in llm.stream("streaming please"))
    assert streamed == "turn 1: streaming please (n=1) [DOC 1]\n\nSources:\n[DOC 1] docs/echo.md"


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """graphs/agentic_rag.yaml (offline profile) served over a small folder of documents."""
    root = tmp_path_factory.mktemp("reference")
    (root / "garden").mkdir()
    for name, text in GARDEN.items():
        (root / "garden" / name).write_text(text)
    settings = ServeSettings(files=(str(ROOT / "graphs" / "agentic_rag.yaml"),), root=str(root), port=0,
                             overrides=(f"collections.knowledge.source={root / 'garden'}",))
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("AGENTFLOW_TRACES_DB", raising=False)
        with ServerThread(settings) as server:
            yield server.url


def test_the_reference_workflows_citations_travel_in_the_text_and_in_the_response(reference: str) -> None:
    client = openai.OpenAI(base_url=f"{reference}/v1", api_key="unused", max_retries=0)
    reply = client.chat.completions.create(
        model="agentic_rag", messages=[{"role": "user", "content": "When do I plant tomato seedlings outside?"}])
    text = reply.choices[0].message.content or ""
    extra = reply.model_extra or {}
    cited = extra["agentflow"]["citations"]
    assert cited and all(c["source"].endswith(".md") and c["quote"] for c in cited)
    assert any(Path(c["source"]).name == "tomatoes.md" for c in cited)
    assert f"[DOC {cited[0]['doc']}]" in text.split("\n\nSources:")[0]  # in the answer's text
    assert f"[DOC {cited[0]['doc']}] {cited[0]['source']}" in text.split("\n\nSources:\n")[1]
    assert extra["citations"] == list(dict.fromkeys(c["source"] for c in cited))
    assert extra["agentflow"]["outputs"]["route"] == "knowledge"
