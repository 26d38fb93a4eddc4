"""Model servers that agentflow finds or starts itself, for model entries that declare ``serve:``.

An entry with ``serve`` (a :class:`~agentflow.models.profiles.ServerLaunch`, as every language-model
alias of the ``local`` profile has) is called through LiteLLM like any OpenAI-compatible server.
Before its first call the router asks this module for a server that serves it, in this order:

1. **the entry's ``api_base``**: when ``/health`` answers there and ``/v1/models`` lists the model
   (with at least the entry's context window), that server is used, and never stopped by agentflow.
   So ``agentflow model-server serve --model smollm2-135m`` in another terminal keeps a model warm across runs;
2. **a server this process already started** for the same model and project (the aliases share it);
3. **a new child process**, ``agentflow model-server serve`` on a free port of 127.0.0.1, logging to
   ``<project>/.agentflow/model-server/<model>.log`` (``<model>-2.log`` while another run's server holds that
   one). The start waits for ``/health`` for at most ``start_timeout_s``; a server that exits or does
   not answer in time is a :class:`~agentflow.models.types.ProviderError` quoting the end of its log.

A started server is stopped (SIGTERM, then SIGKILL after ``stop_timeout_s``) when the last router
that used it is closed (:meth:`ModelRouter.close`), and at the latest when the process exits. If
the process dies without cleaning up (SIGKILL), the server sees its parent gone and stops itself.
A port is claimed in a file shared by every agentflow process of the machine until the server has
bound it, so runs started together never take the same one, and load their servers side by side.
How a server is started and probed is in :mod:`agentflow.models.server_launch`.
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from agentflow.models.server_launch import (
    LOG_DIR,
    StartFailed,
    claim_port,
    open_log,
    post_json,
    serves,
    spawn,
    tail,
    unclaim_port,
    wait_ready,
)
from agentflow.models.profiles import ModelEntry, ServerLaunch
from agentflow.models.sampling import Sampling, SamplingPlan
from agentflow.models.types import (
    LANGUAGE_MODEL,
    ChatModel,
    ChatRequest,
    ChatResponse,
    Message,
    ProviderError,
)

__all__ = ["LOG_DIR", "MANAGED_SERVERS", "ManagedServerChatModel", "ManagedServers", "ServerHandle",
           "release_server", "served_name", "serves", "start_server"]


@dataclass(frozen=True, slots=True)
class ServerHandle:
    """A server that answers for a model entry."""

    api_base: str
    """Where LiteLLM sends the entry's calls (``http://127.0.0.1:PORT/v1``)."""
    pid: int | None
    """The child's process id when agentflow started the server; ``None`` for one found running."""
    log: Path | None
    """The started server's log file."""
    key: tuple[str, str, ServerLaunch, str] = field(repr=False)


@dataclass(slots=True)
class _Slot:
    """One server per project, address, launch and model name, shared by every alias naming it."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    handle: ServerHandle | None = None
    process: subprocess.Popen[bytes] | None = None
    log_file: IO[bytes] | None = None
    owner: int = 0
    stop_timeout_s: float = 10.0
    leases: int = 0
    failure: ProviderError | None = None


def served_name(entry: ModelEntry) -> str:
    """The name the server answers to: the entry's model without its provider prefix."""
    return entry.model.partition("/")[2] or entry.model


class ManagedServers:
    """The servers of this process: found or started on :meth:`acquire`, stopped on :meth:`release`
    of the last user or at exit. One registry, :data:`MANAGED_SERVERS`, serves the process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[tuple[str, str, ServerLaunch, str], _Slot] = {}
        self._atexit = False

    def acquire(self, entry: ModelEntry, *, project_dir: str | Path | None = None) -> ServerHandle:
        """A server serving ``entry``, found or started (this blocks while one loads). Each call
        must be paired with :meth:`release`. Raises :class:`ProviderError` when none can start."""
        if entry.serve is None:
            raise ValueError(f"model entry {entry.model!r} declares no serve: launch")
        root = Path(project_dir or Path.cwd()).resolve()
        key = (str(root), entry.api_base or "", entry.serve, served_name(entry))
        with self._lock:
            slot = self._slots.setdefault(key, _Slot())
        with slot.lock:
            if slot.failure is not None:  # a start that failed once fails the same way: do not wait again
                raise slot.failure
            if slot.handle is None or self._exited(slot) is not None:
                self._close_log(slot)
                slot.handle = self._find_or_start(slot, entry, key, root)
            slot.leases += 1
            return slot.handle

    def release(self, handle: ServerHandle) -> None:
        """One user fewer; the last one stops a server this process started."""
        slot = self._slots.get(handle.key)
        if slot is None:
            return
        with slot.lock:
            slot.leases = max(0, slot.leases - 1)
            if slot.leases == 0:
                self._stop(slot)

    def current(self, handle: ServerHandle) -> bool:
        """Whether ``handle`` is still the slot's server (not stopped, exited or replaced)."""
        slot = self._slots.get(handle.key)
        return slot is not None and slot.handle is handle and self._exited(slot) is None

    def exit_code(self, handle: ServerHandle) -> int | None:
        """The exit code of a started server that has exited; ``None`` while it runs (or not ours)."""
        slot = self._slots.get(handle.key)
        return self._exited(slot) if slot is not None and slot.handle is handle else None

    def stop_all(self) -> None:
        """Stop every server this process started (registered to run at exit)."""
        for slot in list(self._slots.values()):
            with slot.lock:
                if slot.owner == os.getpid():  # a forked child does not stop its parent's servers
                    self._stop(slot)

    # -- internals ------------------------------------------------------------------------------

    def _find_or_start(self, slot: _Slot, entry: ModelEntry, key: Any, root: Path) -> ServerHandle:
        name = served_name(entry)
        if entry.api_base and serves(entry.api_base, name, entry.context_window, api_key=_api_key(entry)):
            return ServerHandle(entry.api_base, None, None, key)
        launch = entry.serve
        assert launch is not None  # checked by acquire
        log_path = root / LOG_DIR / f"{name}.log"
        shown = f"agentflow model-server serve --model {launch.model or name}"
        try:
            log_path, slot.log_file = open_log(root / LOG_DIR, name)
            port = claim_port(launch.start_timeout_s + 30)
            try:
                process, shown = spawn(launch, name, port, root, slot.log_file)
                slot.process, slot.owner, slot.stop_timeout_s = process, os.getpid(), launch.stop_timeout_s
                self._register_atexit()
                api_base = f"http://127.0.0.1:{port}/v1"
                wait_ready(process, api_base, name, launch, entry.context_window)
            finally:
                unclaim_port(port)
        except StartFailed as exc:
            self._stop(slot)
            slot.failure = ProviderError(
                f"{entry.model}: the model server agentflow started for it ({shown}, in {root}) "
                f"{exc}. Its log is {log_path}; it ends with:\n{tail(log_path)}",
                reason="other", model=entry.model,
            )
            raise slot.failure from None
        except BaseException:  # interrupted while it loads: leave nothing running
            self._stop(slot)
            raise
        return ServerHandle(api_base, process.pid, log_path, key)

    def _exited(self, slot: _Slot) -> int | None:
        return slot.process.poll() if slot.process is not None else None

    def _stop(self, slot: _Slot) -> None:
        process, slot.process, slot.handle = slot.process, None, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(slot.stop_timeout_s)
            except subprocess.TimeoutExpired:  # did not stop on SIGTERM: it gets no choice
                process.kill()
                process.wait(10)
        self._close_log(slot)

    def _close_log(self, slot: _Slot) -> None:
        if slot.log_file is not None:
            slot.log_file.close()  # also drops its lock: the next run may use that log name
            slot.log_file = None

    def _register_atexit(self) -> None:
        with self._lock:
            if not self._atexit:
                atexit.register(self.stop_all)
                self._atexit = True


_COUNTS_KEPT = 4096
"""Token counts a managed model keeps (the budget counts each chunk, then the prompt, every pass)."""

MANAGED_SERVERS = ManagedServers()
"""The registry of this process."""


class ManagedServerChatModel:
    """A chat model on agentflow's model server, reached through LiteLLM; the server is found or started by
    :meth:`start`, which the router awaits before the first call (outside the call's timeout)."""

    capabilities = LANGUAGE_MODEL
    """A language model on agentflow's model server (priced by the entry's ``price``, free by default
    in the ``local`` profile through ``Price()``, not by a capability)."""

    def __init__(self, entry: ModelEntry, *, timeout_s: float = 60.0,
                 project_dir: str | Path | None = None, servers: ManagedServers | None = None) -> None:
        self.entry = entry
        self.name = entry.model
        self.kind = entry.provider_kind()
        self.timeout_s = timeout_s
        self.project_dir = project_dir
        self._servers = servers or MANAGED_SERVERS
        self._model = self._client(entry)
        self._handle: ServerHandle | None = None
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def __repr__(self) -> str:
        return f"ManagedServerChatModel({self.name!r}, server={self._handle!r})"

    def count_tokens(self, messages: list[Message]) -> int | None:
        """Prompt tokens of ``messages`` as the server's own tokenizer and chat template count them
        (its ``/tokenize``), once the server is started; None before, or when it cannot say. A
        client-side tokenizer (LiteLLM's default) undercounts a small model's vocabulary, and a
        prompt the budget thought fitted was refused."""
        handle = self._handle
        if handle is None:
            return None
        key = json.dumps(messages, sort_keys=True)
        count = self._counts.get(key)
        if count is not None:
            return count
        origin = handle.api_base.rstrip("/").removesuffix("/v1")
        reply = post_json(f"{origin}/tokenize", {"model": served_name(self.entry), "messages": messages},
                          _api_key(self.entry))
        count = (reply or {}).get("count")
        if not isinstance(count, int):
            return None
        if len(self._counts) >= _COUNTS_KEPT:
            self._counts.clear()
        self._counts[key] = count
        return count

    @property
    def server(self) -> ServerHandle | None:
        """The server in use, once :meth:`start` found or started it."""
        return self._handle

    def sampling_plan(self, sampling: Sampling) -> SamplingPlan:
        return self._model.sampling_plan(sampling)

    async def start(self) -> ServerHandle:
        """Find or start the server: once, unless it has exited since (concurrent callers wait for
        the same start)."""
        handle = self._handle
        if handle is not None and self._servers.current(handle):
            return handle
        return await asyncio.to_thread(self._acquire)

    async def complete(self, request: ChatRequest) -> ChatResponse:
        handle = await self.start()
        try:
            return await self._model.complete(request)
        except ProviderError as exc:
            code = self._servers.exit_code(handle)
            if code is None:
                raise
            # not retried: a server that crashed on a request may crash again; the next call restarts it
            raise ProviderError(
                f"{self.name}: the model server agentflow started (pid {handle.pid}) exited with code "
                f"{code}. Its log is {handle.log}; it ends with:\n{tail(handle.log)}",
                reason="other", model=self.name,
            ) from exc

    def close(self) -> None:
        """Release the server: one this process started stops when no other model uses it."""
        with self._lock:
            handle, self._handle = self._handle, None
            if handle is not None:
                self._model = self._client(self.entry)
                self._servers.release(handle)

    def _acquire(self) -> ServerHandle:
        with self._lock:
            old = self._handle
            if old is not None and self._servers.current(old):
                return old
            handle = self._servers.acquire(self.entry, project_dir=self.project_dir)
            if old is not None:  # after the new lease, so a server still in use is not stopped
                self._servers.release(old)
            self._model = self._client(self.entry.model_copy(update={"api_base": handle.api_base}))
            self._handle = handle
            return handle

    def _client(self, entry: ModelEntry) -> Any:
        from agentflow.models.litellm_adapter import LiteLLMChatModel

        return LiteLLMChatModel(entry, timeout_s=self.timeout_s)


async def start_server(model: ChatModel) -> None:
    """Before a call: find or start the server of a model that runs on a managed server."""
    if isinstance(model, ManagedServerChatModel):
        await model.start()


def release_server(model: ChatModel) -> None:
    """After a run: release the server of a model that runs on a managed server."""
    if isinstance(model, ManagedServerChatModel):
        model.close()


def _api_key(entry: ModelEntry) -> str | None:
    return os.environ.get(entry.api_key_env) if entry.api_key_env else None
