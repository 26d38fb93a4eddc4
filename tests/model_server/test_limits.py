"""The server under hostile or careless input: body size, huge prompts, deep schemas, bursts, keys, Host headers."""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agentflow.model_server.constrained import FormatError, check_depth

from .conftest import Served, serve

MODEL = "stories260K"
LIMIT = 64 * 1024
MAX_DEPTH = 64  # agentflow.model_server.constrained.MAX_DEPTH


@pytest.fixture(scope="module")
def limited(stories: Path) -> Iterator[Served]:
    """A server with a small body limit and one extra allowed host name."""
    yield from serve(stories, max_batch=4, max_request_bytes=LIMIT, allow_hosts=("node.internal",))


@pytest.fixture(scope="module")
def plain(stories: Path) -> Iterator[Served]:
    """A server with the default limits."""
    yield from serve(stories, max_batch=4)


def completion(served: Served, **body: Any) -> httpx.Response:
    return httpx.post(served.base + "/completions", json={"model": MODEL, **body}, timeout=30)


def test_a_body_over_the_limit_is_413_before_it_is_parsed(limited: Served) -> None:
    r = completion(limited, prompt="x" * (LIMIT + 1))
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert f"limit of {LIMIT} bytes" in error["message"] and "--max-request-bytes" in error["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the bytes are counted as they arrive
        yield b'{"model": "stories260K", "prompt": "'
        for _ in range(LIMIT // 1024 + 1):
            yield b"x" * 1024
        yield b'"}'

    r = httpx.post(limited.base + "/completions", content=chunks(), headers={"content-type": "application/json"})
    assert r.status_code == 413 and f"more than {LIMIT} bytes" in r.json()["error"]["message"]
    ok = completion(limited, prompt="The cat", max_tokens=2)
    assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 2


def health_latencies(served: Served, busy: threading.Thread) -> list[float]:
    """Time /health calls for as long as ``busy`` runs."""
    latencies = []
    with httpx.Client(timeout=60) as http:
        while busy.is_alive():
            start = time.monotonic()
            assert http.get(served.url + "/health").status_code == 200
            latencies.append(time.monotonic() - start)
            time.sleep(0.05)
    return latencies


def test_a_prompt_longer_than_any_context_is_refused_untokenized_and_health_stays_fast(plain: Served) -> None:
    result: dict[str, httpx.Response] = {}
    # just under the default 4 MiB body limit; tokenizing it takes seconds
    busy = threading.Thread(target=lambda: result.update(r=completion(plain, prompt="x" * 4_000_000)))
    busy.start()
    latencies = health_latencies(plain, busy)
    busy.join()
    assert max(latencies, default=0.0) < 2.0, latencies  # generous: tokenizing 4 MB on the loop takes longer
    r = result["r"]
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    limit = 512 * plain.runtime.tokenizer.max_token_chars  # type: ignore[attr-defined]
    assert f"more than the {limit} that could fit in the model's context of 512 tokens" in r.json()["error"]["message"]


def test_tokenizing_runs_off_the_event_loop(plain: Served, monkeypatch: pytest.MonkeyPatch) -> None:
    tokenizer = plain.runtime.tokenizer  # type: ignore[attr-defined]
    encode, started, release = tokenizer.encode, threading.Event(), threading.Event()

    def slow_encode(text: str) -> list[int]:
        started.set()
        release.wait(10)
        return encode(text)

    monkeypatch.setattr(tokenizer, "encode", slow_encode)
    result: dict[str, httpx.Response] = {}
    busy = threading.Thread(target=lambda: result.update(r=completion(plain, prompt="The cat", max_tokens=2)))
    busy.start()
    try:
        assert started.wait(10)
        # The prompt is being tokenized right now; the event loop still answers.
        assert httpx.get(plain.url + "/health", timeout=5).json()["status"] == "ok"
    finally:
        release.set()
        busy.join()
    assert result["r"].status_code == 200


def test_a_lone_surrogate_in_the_prompt_is_400(plain: Served) -> None:
    body = b'{"model": "stories260K", "prompt": "hello \\udcff"}'
    r = httpx.post(plain.base + "/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "prompt"
    assert "lone surrogate" in r.json()["error"]["message"]


def test_an_empty_prompt_list_is_400_naming_prompt(plain: Served) -> None:
    r = completion(plain, prompt=[])
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "prompt" and "empty" in r.json()["error"]["message"]


def deep_schema(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def test_a_schema_nested_past_the_depth_limit_is_refused_by_name() -> None:
    from agentflow.model_server import constrained

    assert constrained.MAX_DEPTH == MAX_DEPTH
    check_depth(deep_schema(MAX_DEPTH - 1), "schema")
    with pytest.raises(FormatError, match=f"nested more than {MAX_DEPTH} levels deep"):
        check_depth(deep_schema(MAX_DEPTH), "schema")
    with pytest.raises(FormatError, match=f"nested more than {MAX_DEPTH} levels deep"):
        check_depth(deep_schema(800), "schema")


def test_a_response_format_nested_800_deep_is_400(plain: Served) -> None:
    schema = '{"items": ' * 800 + "{}" + "}" * 800  # written out: json.dumps itself cannot nest this deep
    body = ('{"model": "stories260K", "prompt": "hi", "response_format": {"type": "json_schema", '
            '"json_schema": {"schema": ' + schema + "}}}")
    r = httpx.post(plain.base + "/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "response_format" and f"more than {MAX_DEPTH} levels deep" in error["message"]


def test_bad_json_says_what_and_where(plain: Served) -> None:
    body = b'{"model": "stories260K", "prompt": "hi" "max_tokens": 2}'
    r = httpx.post(plain.base + "/completions", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 400
    assert r.json()["error"] == {"message": "request body is not valid JSON: Expecting ',' delimiter at line 1 "
                                            "column 41", "type": "invalid_request_error", "param": None,
                                 "code": None}


@pytest.mark.parametrize(("path", "body", "param"), [
    ("/completions", {"prompt": 5}, "prompt"),
    ("/completions", {"prompt": "hi", "stop": [1]}, "stop"),
    ("/chat/completions", {"messages": [{"role": "robot", "content": "hi"}]}, "messages.0.role"),
])
def test_validation_errors_name_the_field_path(plain: Served, path: str, body: dict, param: str) -> None:
    r = httpx.post(plain.base + path, json={"model": MODEL, **body})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["param"] == param and error["message"].startswith(param + ": ")


@pytest.fixture(scope="module")
def burst_server(stories: Path) -> Iterator[Served]:
    yield from serve(stories, max_batch=2, queue_limit=2)


def test_a_simultaneous_burst_gets_max_batch_running_plus_queue_limit_waiting(
    burst_server: Served, monkeypatch: pytest.MonkeyPatch,
) -> None:
    runtime: Any = burst_server.runtime
    scheduler, engine = runtime.scheduler, runtime.engine
    gate, submitted = threading.Event(), []
    step, submit = engine.step, scheduler.submit

    def gated_step() -> Any:  # hold the engine, so no request starts (or ends) during the burst
        gate.wait(30)
        return step()

    def counted_submit(request: Any) -> Any:
        submitted.append(request.request_id)
        return submit(request)

    monkeypatch.setattr(engine, "step", gated_step)
    monkeypatch.setattr(scheduler, "submit", counted_submit)
    body = {"model": MODEL, "prompt": "The cat", "max_tokens": 8, "temperature": 0}

    async def burst() -> list[int]:
        async with httpx.AsyncClient(base_url=burst_server.base, timeout=60) as http:
            tasks = [asyncio.ensure_future(http.post("/completions", json=body)) for _ in range(6)]
            deadline = time.monotonic() + 30
            while len(submitted) < 6:
                assert time.monotonic() < deadline, "the burst did not reach the scheduler"
                await asyncio.sleep(0.02)
            gate.set()
            return [r.status_code for r in await asyncio.gather(*tasks)]

    try:
        statuses = asyncio.run(burst())
    finally:
        gate.set()
    # 2 slots + 2 waiting, exactly as for staggered arrivals; the other 2 are turned away.
    assert Counter(statuses) == {200: 4, 503: 2}
    assert scheduler.waiting == 0


@pytest.fixture(scope="module")
def keyed(stories: Path) -> Iterator[Served]:
    yield from serve(stories, max_batch=2, api_key="s3cret")


def test_the_api_key_guards_every_route_but_health_and_metrics(keyed: Served) -> None:
    for path in ("/docs", "/redoc", "/openapi.json", "/v1/models", "/nothing-here"):
        r = httpx.get(keyed.url + path)
        assert r.status_code == 401, path
        assert r.json()["error"]["type"] == "authentication_error"
    auth = {"Authorization": "Bearer s3cret"}
    assert httpx.get(keyed.url + "/openapi.json", headers=auth).json()["info"]["title"] == "agentflow model server"
    assert httpx.get(keyed.url + "/docs", headers=auth).status_code == 200
    r = httpx.get(keyed.url + "/nothing-here", headers=auth)
    assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error"
    assert httpx.get(keyed.url + "/health").status_code == 200
    assert httpx.get(keyed.url + "/metrics").status_code == 200


def test_a_request_for_another_host_is_refused(limited: Served) -> None:
    port = limited.url.rsplit(":", 1)[1]
    r = httpx.get(limited.url + "/v1/models", headers={"Host": "attacker.example"})
    assert r.status_code == 403
    message = r.json()["error"]["message"]
    assert "'attacker.example'" in message and "127.0.0.1, localhost, [::1], node.internal" in message
    assert "--allow-host" in message
    assert httpx.get(limited.url + "/health", headers={"Host": "attacker.example"}).status_code == 403
    for host in (f"localhost:{port}", f"127.0.0.1:{port}", f"[::1]:{port}", "node.internal", "NODE.internal:80"):
        assert httpx.get(limited.url + "/v1/models", headers={"Host": host}).status_code == 200, host


@pytest.mark.parametrize(("bind", "extra", "expected"), [
    ("127.0.0.1", (), ("127.0.0.1", "localhost", "[::1]")),
    ("localhost", ("box.lan",), ("127.0.0.1", "localhost", "[::1]", "box.lan")),
    ("::1", (), ("127.0.0.1", "localhost", "[::1]")),
    ("10.0.0.5", (), ("127.0.0.1", "localhost", "[::1]", "10.0.0.5")),
    ("0.0.0.0", (), None),
    ("0.0.0.0", ("Box.LAN",), ("127.0.0.1", "localhost", "[::1]", "box.lan")),
    ("127.0.0.1", ("*",), None),
])
def test_allowed_hosts_follow_the_bind_address(bind: str, extra: tuple[str, ...], expected: object) -> None:
    from agentflow.model_server.guards import allowed_hosts

    assert allowed_hosts(bind, extra) == expected


def test_host_patterns() -> None:
    from agentflow.model_server.guards import allowed_hosts, host_allowed

    allowed = allowed_hosts("127.0.0.1", ("*.corp.example",))
    assert allowed is not None
    assert host_allowed("a.corp.example:8000", allowed) and not host_allowed("corp.example.evil", allowed)
    assert not host_allowed("", allowed) and not host_allowed("127.0.0.2", allowed)
    with pytest.raises(ValueError, match="not valid"):
        allowed_hosts("127.0.0.1", ("a.*.example",))
