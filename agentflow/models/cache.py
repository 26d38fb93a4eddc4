"""A response cache with record and replay, in SQLite, keyed by the normalised request.

Modes:

========  ==============================================  =====================
mode      a hit                                           a miss
========  ==============================================  =====================
off       (the cache is not consulted)                    calls the model
read      served from the cache                           calls the model, not stored
write     served from the cache                           calls the model and stores the answer
replay    served from the cache                           :class:`ModelError`
========  ==============================================  =====================

Record a run against a real provider with ``write``; replay it offline in tests with ``replay``,
where a request nobody recorded fails loudly instead of reaching the network.

What is stored goes through :mod:`agentflow.redaction` first, as traces do: a credential in a
prompt or echoed in a response is kept as ``[REDACTED]`` (and replayed so). The key is a hash of
the request as sent, so lookups still tell requests apart. Even so the file holds the prompts and
answers of real runs: review it before sharing it, and keep it out of version control unless it
was recorded from test data.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentflow.errors import ModelError
from agentflow.models.profiles import CacheMode
from agentflow.models.types import ChatRequest, ChatResponse, Message
from agentflow.redaction import redact, redact_text, secret_env_values

_SCHEMA = """
CREATE TABLE IF NOT EXISTS responses (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    request TEXT NOT NULL,
    response TEXT NOT NULL,
    created REAL NOT NULL
)
"""
_MODES: tuple[CacheMode, ...] = ("off", "read", "write", "replay")


def normalised_request(model: str, request: ChatRequest, *, with_inputs: bool) -> dict[str, Any]:
    """The parts of a request that decide its answer, in a canonical JSON-ready form.

    The structured inputs count only for backends that answer from them (``with_inputs``); the
    timeout never counts.
    """
    out: dict[str, Any] = {
        "model": model,
        "messages": [_message(m) for m in request.messages],
        "sampling": request.sampling.provided(),
    }
    if request.response_schema is not None:
        out["schema"] = {"name": request.schema_name, "schema": request.response_schema}
    if request.constraint is not None:
        out["constraint"] = request.constraint.model_dump(mode="json")
    if with_inputs and request.inputs is not None:
        out["inputs"] = request.inputs.model_dump(mode="json", exclude_defaults=True)
    return out


def _message(message: Message | Mapping[str, Any]) -> dict[str, str]:
    return {"role": str(message["role"]), "content": str(message["content"]).strip()}


def request_key(normalised: Mapping[str, Any]) -> str:
    """A stable hash of a normalised request."""
    return CacheKey.of(normalised).key


@dataclass(frozen=True, slots=True)
class CacheKey:
    """A request's key, with the canonical JSON it hashes (stored beside the answer)."""

    key: str
    model: str
    request_json: str

    @classmethod
    def of(cls, normalised: Mapping[str, Any]) -> CacheKey:
        blob = json.dumps(normalised, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        # "surrogatepass": a lone surrogate from JSON input must not fail the call (it is
        # replaced by U+FFFD only in what is stored)
        digest = hashlib.sha256(blob.encode("utf-8", "surrogatepass")).hexdigest()
        return cls(digest, str(normalised.get("model", "")), blob)


class ResponseCache:
    """Stores responses by request key in one SQLite file; safe to share between coroutines."""

    def __init__(self, path: str | Path, mode: CacheMode = "write") -> None:
        if mode not in _MODES:
            raise ModelError(f"unknown cache mode {mode!r}; valid: {', '.join(_MODES)}")
        self.path = Path(path)
        self.mode: CacheMode = mode
        self._conn: sqlite3.Connection | None = None
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            if self.mode == "replay" and not self.path.exists():
                raise ModelError(
                    f"cache mode 'replay' needs a recorded cache at {self.path}, which does not "
                    "exist; record one first with cache mode 'write'"
                )
            self.path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(_SCHEMA)
            # Keys are read once, so a miss costs a set lookup rather than a query; entries that
            # another process adds later are not seen by this cache object.
            self._keys = {row[0] for row in conn.execute("SELECT key FROM responses")}
            self._conn = conn
        return self._conn

    @property
    def reads(self) -> bool:
        return self.mode != "off"

    @property
    def writes(self) -> bool:
        return self.mode == "write"

    def get(self, key: str) -> ChatResponse | None:
        """The stored response of ``key``, or ``None``."""
        if not self.reads:
            return None
        with self._lock:
            db = self._db()
            if key not in self._keys:
                return None
            row = db.execute("SELECT response FROM responses WHERE key = ?", (key,)).fetchone()
        return None if row is None else ChatResponse.model_validate_json(row[0])

    def put(self, key: CacheKey, response: ChatResponse) -> None:
        """Store a response, redacted (only in ``write`` mode); ``parsed`` as plain JSON."""
        if not self.writes:
            return
        stored = response.model_copy(update={"parsed": _plain(response.parsed)})
        secrets = secret_env_values()
        request = _redacted_json(json.loads(key.request_json), secrets)
        answer = _redacted_json(stored.model_dump(mode="json"), secrets)
        with self._lock:
            self._db().execute(
                "INSERT OR REPLACE INTO responses (key, model, request, response, created) "
                "VALUES (?, ?, ?, ?, ?)",
                (key.key, redact_text(key.model, secrets), request, answer, time.time()),
            )
            self._keys.add(key.key)

    def miss(self, key: str, model: str, messages: Sequence[Message]) -> ModelError:
        """The error of a miss in ``replay`` mode."""
        last = redact_text(str(messages[-1]["content"]))[:80] if messages else ""
        return ModelError(
            f"no recorded response for a call to {model!r} in the replay cache {self.path} "
            f"(key {key[:12]}, last message {last!r}); record it with cache mode 'write'"
        )

    def __len__(self) -> int:
        with self._lock:
            return int(self._db().execute("SELECT COUNT(*) FROM responses").fetchone()[0])

    def clear(self) -> None:
        with self._lock:
            self._db().execute("DELETE FROM responses")
            self._keys.clear()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _redacted_json(value: Any, secrets: Sequence[str]) -> str:
    return json.dumps(redact(value, secrets), sort_keys=True, separators=(",", ":"),
                      ensure_ascii=False)


def _plain(value: Any) -> Any:
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else value
