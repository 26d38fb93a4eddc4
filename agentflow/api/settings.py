"""What ``agentflow serve`` was asked to serve, and how: one value every worker rebuilds its app from.

Workers are separate processes (uvicorn ``--workers``): they get the settings as JSON in the environment
variable :data:`SETTINGS_ENV`. The API key never travels in the settings: only the name of the environment
variable that holds it does, so nothing a worker writes or logs can hold the key.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SETTINGS_ENV = "AGENTFLOW_SERVE_SETTINGS"
KEY_ENV = "AGENTFLOW_SERVE_API_KEY"
"""Where ``agentflow serve --api-key`` puts the key for its workers (and where one is looked up by
default)."""
DEFAULT_PORT = 8080
DEFAULT_MAX_BYTES = 1024 * 1024
CHECKPOINTS = Path(".agentflow") / "checkpoints.db"


@dataclass(frozen=True)
class ServeSettings:
    """The served workflows and the server's options (see ``agentflow serve --help``)."""

    files: tuple[str, ...]
    """YAML workflows, absolute paths."""
    root: str = "."
    """The project folder: ``agentflow.yaml``, prompts, ``.agentflow/`` (traces, checkpoints, store)."""
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    checkpoint: str | None = None
    """A SQLite file, or a ``postgresql://`` URL; ``<root>/.agentflow/checkpoints.db`` when None."""
    profile: str | None = None
    overrides: tuple[str, ...] = ()
    allow_modules: tuple[str, ...] = ()
    experiments: tuple[str, ...] = ()
    """A/B test files given with ``--ab`` (``<workflow>.ab.yaml`` beside a workflow is found too)."""
    allow_hosts: tuple[str, ...] = ()
    max_request_bytes: int = DEFAULT_MAX_BYTES
    api_key_env: str | None = None
    """The environment variable that holds the API key; no key is checked when None or unset."""
    records: bool = True
    """With PostgreSQL checkpoints, also record every served run and rating there (see
    :mod:`agentflow.api.records`): for machines that do not share one trace store."""
    stream_heartbeat_s: float = 15.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def checkpoint_url(self) -> str:
        """The checkpointer's location: the given one, else the project's SQLite file."""
        return self.checkpoint or str(Path(self.root) / CHECKPOINTS)

    @property
    def postgres(self) -> bool:
        return self.checkpoint_url.startswith(("postgresql://", "postgres://"))

    def api_key(self) -> str | None:
        """The key clients must send, read from the environment (None: no key is checked)."""
        if not self.api_key_env:
            return None
        return os.environ.get(self.api_key_env) or None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ServeSettings:
        data = json.loads(text)
        for key in ("files", "overrides", "allow_modules", "experiments", "allow_hosts"):
            data[key] = tuple(data.get(key) or ())
        return cls(**data)

    @classmethod
    def from_env(cls) -> ServeSettings:
        text = os.environ.get(SETTINGS_ENV)
        if not text:
            raise RuntimeError(f"{SETTINGS_ENV} is not set: start workers with `agentflow serve`")
        return cls.from_json(text)


def redacted_url(url: str) -> str:
    """A database URL without its password, for messages and logs."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))
