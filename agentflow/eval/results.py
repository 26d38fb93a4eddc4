"""The files of an evaluation folder: ``eval.json`` (what was evaluated), ``results.jsonl`` (one
line per finished item, written as soon as the item finishes), ``metrics.json`` and
``report.html``.

Every file is written through :mod:`agentflow.redaction`, as traces are: a credential in an
item's question, a document or an error message is stored as ``[REDACTED]``.

``results.jsonl`` is what makes an evaluation resumable: a rerun skips the ids it holds. A line
cut short by a crash (the last line, without its newline) is dropped on reading and its item runs
again; a malformed line elsewhere is an error naming the file and line.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from agentflow.eval.formats import DatasetError
from agentflow.redaction import redact, redact_text, secret_env_values

MANIFEST, RESULTS, METRICS, REPORT = "eval.json", "results.jsonl", "metrics.json", "report.html"
CACHES = "caches.json"
"""What each invocation found in the embedding cache (see :func:`agentflow.eval.runner.record_caches`)."""

IDENTITY = ("workflow", "format", "dataset", "split", "overrides", "profile")
"""Manifest keys that must match to resume into a folder (``--limit`` may change)."""


def read_results(folder: Path) -> list[dict[str, Any]]:
    """The records of ``folder/results.jsonl`` (empty when there is none). A final line without
    its newline was cut short by a crash: it is kept when it is whole JSON (and the newline added),
    dropped otherwise (the file is truncated), so that appends start on a clean line."""
    path = folder / RESULTS
    if not path.is_file():
        return []
    raw = path.read_bytes()
    head, newline, tail = raw.rpartition(b"\n")
    records: list[dict[str, Any]] = []
    for number, line in enumerate(head.split(b"\n") if newline else [], start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            raise DatasetError(f"{path}:{number}: not a result line (invalid JSON); fix or "
                               "delete the line, or rerun with --fresh") from None
    if tail.strip():
        try:
            records.append(json.loads(tail))
        except json.JSONDecodeError:
            with path.open("r+b") as handle:
                handle.truncate(len(head) + len(newline))
        else:
            with path.open("ab") as handle:
                handle.write(b"\n")
    return records


def latest_by_id(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """The last record of each item id (a retried item's new line replaces its error)."""
    return {str(r.get("id")): r for r in records}


class ResultsWriter:
    """Appends one JSON line per finished item and flushes it to disk at once."""

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self._handle = (folder / RESULTS).open("a", encoding="utf-8")
        self._secrets = secret_env_values()

    def write(self, record: Mapping[str, Any]) -> None:
        self._handle.write(_dumps(record, self._secrets) + "\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        self._handle.close()


def read_manifest(folder: Path) -> dict[str, Any] | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path}: invalid JSON ({exc.msg}); rerun with --fresh") from None
    return data if isinstance(data, dict) else None


def check_resumable(folder: Path, manifest: Mapping[str, Any]) -> None:
    """Refuse to mix results: the folder's earlier evaluation must be of the same workflow, data
    and settings."""
    old = read_manifest(folder)
    if old is None or not (folder / RESULTS).is_file():
        return
    secrets = secret_env_values()
    for key in IDENTITY:  # the stored manifest is redacted: compare like with like
        if old.get(key) != redact(manifest.get(key), secrets):
            raise DatasetError(
                f"{folder} holds an evaluation with another {key} ({old.get(key)!r}, now "
                f"{manifest.get(key)!r}); use another --out, or --fresh to start over there")


def write_json(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(_dumps(data, secret_env_values(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _dumps(data: Any, secrets: tuple[str, ...], *, indent: int | None = None) -> str:
    """JSON text of ``data`` with every credential redacted (objects JSON does not know become
    their redacted ``str``)."""
    return json.dumps(redact(data, secrets), indent=indent, ensure_ascii=False,
                      default=lambda v: redact_text(str(v), secrets))


def start_fresh(folder: Path) -> None:
    """Remove an earlier evaluation's files from ``folder`` (``--fresh``)."""
    for name in (RESULTS, METRICS, REPORT, MANIFEST, CACHES):
        (folder / name).unlink(missing_ok=True)
