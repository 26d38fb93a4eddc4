"""One redaction for every sink that persists model traffic, table-driven: each kind of secret, put
in a question and a retrieved document and echoed back by the model, must reach none of the trace
store's file, ``agentflow traces export``, OpenTelemetry spans (live and exported from the store),
the model cache's file, or an evaluation's ``results.jsonl``, ``metrics.json`` and
``report.html``; a ``[REDACTED]`` marker must be in each."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agentflow.eval import RunOptions, evaluate_prepared, load_dataset, prepared_flow
from agentflow.graph.context import Services
from agentflow.models import ChatRequest, ResponseCache
from agentflow.redaction import REDACTED, redact, redact_text
from agentflow.spec.load import load_workflow
from agentflow.spec.services import default_services
from agentflow.testing import InMemoryRetriever
from agentflow.testing.models import FakeRouter
from agentflow.tracing import OTelExporter, SQLiteTraceStore, TraceReader, cli
from agentflow.tracing.otel import export_spans
from agentflow.tracing.query import run_records

AWS_SECRET = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"

SECRETS: dict[str, tuple[str, tuple[str, ...]]] = {
    # kind: (text holding the secret, substrings that must never be stored)
    "openai_key": ("my key is sk-proj-Abc123def456GHI789jkl012mno please", ("Abc123def456GHI789",)),
    "anthropic_key": ("use sk-ant-api03-Zyx987wvu654TSR321qpo000 here", ("Zyx987wvu654TSR321",)),
    "bearer": ("the server said Authorization: Bearer QmVhcmVyLXNlY3JldC12YWx1ZQ ok",
               ("QmVhcmVyLXNlY3JldC12YWx1ZQ",)),
    "aws_pair": (f"config has aws_secret_access_key = {AWS_SECRET} in it", (AWS_SECRET,)),
    "aws_bare": (f"the AWS secret is {AWS_SECRET} (rotate it)", (AWS_SECRET,)),
    "url_password": ("connect with postgresql://app:Tr0ub4dor-and-3@db.internal:5432/prod today",
                     ("Tr0ub4dor-and-3",)),
    "pem": ("key file:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq9PemBodyLineOne\n"
            "Q2hlY2tQZW1Cb2R5TGluZVR3bw==\n-----END RSA PRIVATE KEY-----\nend",
            ("MIIEowIBAAKCAQEA7bq9PemBodyLineOne", "Q2hlY2tQZW1Cb2R5TGluZVR3bw")),
    "jwt": ("session eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZGEtbG92ZWxhY2UifQ.c2lnbmF0dXJlLXNlY3JldA x",
            ("eyJzdWIiOiJhZGEtbG92ZWxhY2UifQ", "c2lnbmF0dXJlLXNlY3JldA")),
    "json_pair": ('the payload was {"api_key": "plainvalue-98765-zz", "model": "m"}',
                  ("plainvalue-98765-zz",)),
    "kv_pair": ("set password = hunter2-correct-horse and go", ("hunter2-correct-horse",)),
    "yaml_pair": ("settings:\n  client_secret: s3cr3t-v4lu3-xq\n  region: eu",
                  ("s3cr3t-v4lu3-xq",)),
}

WORKFLOW = """
version: 1
name: leaky
inputs:
  question: {type: string}
state:
  chunks: {type: list}
nodes:
  search: {type: retrieve, collection: knowledge, input: question, output: chunks, top_k: 2}
  answer: {type: generate, query: question, documents: chunks, output: answer, model: large}
flow: [search, answer]
"""

CHAT_WORKFLOW = """
version: 1
name: chatty
inputs:
  question: {type: string}
nodes:
  answer: {type: chat, input: question, output: answer, model: large}
flow: [answer]
"""


def _echo(request: ChatRequest) -> str:
    """A model that echoes its prompt (as a server echoing a credential back would)."""
    return "You said: " + " | ".join(str(m["content"]) for m in request.messages)


def _services(root: Path, document: str) -> Services:
    router = FakeRouter({"large": _echo, "small": _echo},
                        cache=ResponseCache(root / "model_cache.db", "write"))
    retriever = InMemoryRetriever.from_texts({"notes.md": f"Notes for the team. {document}"})
    return default_services(root=root, base=Services(models=router,
                                                     retrievers={"knowledge": retriever}))


def _file_text(folder: Path, name: str) -> str:
    """Every byte SQLite wrote for ``name`` (the database, its WAL), decoded leniently."""
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in sorted(folder.glob(f"{name}*")))


def _span_text(spans: list[Any]) -> str:
    parts = []
    for span in spans:
        parts.append(span.name)
        parts.append(json.dumps(dict(span.attributes or {}), default=str))
        parts.append(str(span.status.description or ""))
    return "\n".join(parts)


def _export_text(db: Path, capsys: pytest.CaptureFixture[str]) -> str:
    parser = argparse.ArgumentParser(prog="agentflow")
    cli.add_parser(parser.add_subparsers())
    args = parser.parse_args(["traces", "export", "--all", "--db", str(db)])
    capsys.readouterr()
    assert int(args.handler(args)) == 0
    return capsys.readouterr().out


def _run_everything(root: Path, text: str, capsys: pytest.CaptureFixture[str],
                    monkeypatch: pytest.MonkeyPatch, *, document: str | None = None,
                    workflow: str = WORKFLOW) -> dict[str, str]:
    """Run the workflow once traced (store + OTel) and evaluate it once, with ``text`` in the
    question and in the document (unless ``document`` is given); every sink's text."""
    document = text if document is None else document
    monkeypatch.chdir(root)
    monkeypatch.setenv("AGENTFLOW_TRACES_DB", str(root / "eval_traces.db"))
    flow = load_workflow("flow.yaml", text=workflow).flow
    question = f"What do the notes say? {text}"

    store = SQLiteTraceStore(root / "traces.db")
    memory = InMemorySpanExporter()
    otel = OTelExporter(memory)
    asyncio.run(flow.arun({"question": question}, services=_services(root, document),
                          hooks=[store, otel]))
    store.flush()
    otel.close()
    stored = InMemorySpanExporter()
    reader = TraceReader(root / "traces.db")
    for summary in reader.runs(limit=10):
        export_spans(run_records(reader.run(summary.run_id, with_data=True)), stored)

    data = root / "items.jsonl"
    data.write_text(json.dumps({"id": "q1", "question": question, "answers": [text]}) + "\n")
    out = root / "eval"
    prepared = prepared_flow(flow, _services(root / "eval", document),
                             chunks="chunks" if workflow is WORKFLOW else None)
    asyncio.run(evaluate_prepared(prepared, load_dataset(data, "jsonl"), out,
                                  options=RunOptions(progress=False, judge=False)))
    sinks = {
        "trace_store_file": _file_text(root, "traces.db"),
        "traces_export": _export_text(root / "traces.db", capsys),
        "otel_live": _span_text(list(memory.get_finished_spans())),
        "otel_from_store": _span_text(list(stored.get_finished_spans())),
        "model_cache_file": _file_text(root, "model_cache.db"),
        "eval_results": (out / "results.jsonl").read_text(encoding="utf-8"),
        "eval_metrics": (out / "metrics.json").read_text(encoding="utf-8"),
        "eval_report": (out / "report.html").read_text(encoding="utf-8"),
        "eval_traces_file": _file_text(root, "eval_traces.db"),
        "eval_model_cache_file": _file_text(out, "model_cache.db"),
    }
    store.close()
    return sinks


SINKS = ("trace_store_file", "traces_export", "otel_live", "otel_from_store", "model_cache_file",
         "eval_results", "eval_report", "eval_traces_file", "eval_model_cache_file")
"""Sinks that hold the question or the answer (``metrics.json`` holds neither: it is checked
for leaks only)."""


@pytest.mark.parametrize("kind", list(SECRETS))
def test_no_sink_stores_a_secret_and_each_shows_the_marker(
        kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    sinks = _run_everything(tmp_path, SECRETS[kind][0], capsys, monkeypatch)
    leaks = {sink: secret for sink, text in sinks.items() for secret in SECRETS[kind][1]
             if secret in text}
    assert not leaks, f"{kind} stored verbatim in: {', '.join(leaks)}"
    missing = [sink for sink in SINKS if REDACTED not in sinks[sink]]
    assert not missing, f"no {REDACTED} marker for {kind} in: {', '.join(missing)}"


@pytest.mark.parametrize("kind", list(SECRETS))
def test_each_kind_is_redacted_in_text_and_redacting_again_changes_nothing(kind: str) -> None:
    text, secrets = SECRETS[kind]
    out = redact_text(text)
    assert REDACTED in out and not any(s in out for s in secrets)
    assert redact_text(out) == out
    assert redact({"note": text}) == {"note": out}


@pytest.mark.parametrize("text", [
    "max_tokens: 256, tokens: 12", "The key idea: loops end.", "Author: Ada Lovelace",
    "mail ada@example.com or see https://example.com/docs", "token := next(it)",
    "if token == expected: return", "commit 3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c is secret",
    "primary_key = 7",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_the_secret_values_of_url_pem_and_pairs_keep_their_context() -> None:
    assert (redact_text("postgresql://user:pass1234@host/db")
            == f"postgresql://user:{REDACTED}@host/db")
    assert redact_text("API_KEY=abcd1234;x=1") == f"API_KEY={REDACTED};x=1"
    assert redact_text('{\\"api_key\\": \\"abc12345\\"}') == f'{{\\"api_key\\": \\"{REDACTED}\\"}}'
    assert redact_text("monkey: password=abc12345") == f"monkey: password={REDACTED}"
    pem = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----"
    assert redact_text(pem) == f"-----BEGIN PRIVATE KEY-----{REDACTED}-----END PRIVATE KEY-----"
    cut = redact_text("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA")
    assert cut == f"-----BEGIN OPENSSH PRIVATE KEY-----{REDACTED}"


def test_a_lone_surrogate_is_recorded_everywhere_as_a_replacement_character(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """``{"question": "hello \\udcff"}`` from JSON input: the run is stored (the character becomes
    U+FFFD) instead of failing the store's write with UnicodeEncodeError."""
    sinks = _run_everything(tmp_path, "hello \udcff world", capsys, monkeypatch,
                            workflow=CHAT_WORKFLOW, document="hello world")
    reader = TraceReader(tmp_path / "traces.db")
    (run,) = reader.runs(limit=10)
    assert run.status == "ok"
    detail = reader.run(run.run_id, with_data=True)
    assert "hello \ufffd world" in json.dumps(detail.to_dict(), ensure_ascii=False)
    for sink in ("trace_store_file", "model_cache_file", "eval_results", "eval_report"):
        assert "hello \ufffd world" in sinks[sink], sink
    assert json.loads((tmp_path / "eval" / "results.jsonl").read_text())["status"] == "ok"


@pytest.mark.parametrize("text", [
    "a." * 100_000 + " ://x:y@z", "key:" * 50_000, "eyJa-" * 40_000, "aws " * 50_000,
    "password=" * 20_000, 'key: "' + "a\\" * 100_000, "-----BEGIN PRIVATE KEY-----" * 5_000,
])
def test_redaction_stays_linear_on_text_made_to_be_slow(text: str) -> None:
    """200 kB built to make a backtracking pattern quadratic (minutes) is redacted in well under
    the generous bound."""
    import time

    started = time.perf_counter()
    redact_text(text)
    assert time.perf_counter() - started < 3.0
