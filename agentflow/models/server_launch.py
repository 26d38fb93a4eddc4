"""Starting one model server as a child process, and asking a server whether it serves a model.

The parts of :mod:`agentflow.models.managed_server` that deal with processes, ports, files and HTTP:
the command line (``agentflow model-server serve`` run as ``python -c`` with a watchdog), a free port
claimed across every agentflow process of the machine, the log file under ``.agentflow/model-server/``,
the wait for ``/health`` and the probe of ``/v1/models``. The server is reached through its command
line and HTTP only: nothing of ``agentflow.model_server`` is imported here.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from agentflow.models.profiles import ServerLaunch

try:  # POSIX: the port claims and the log files are flock()ed; elsewhere they go unlocked
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

LOG_DIR = Path(".agentflow") / "model-server"
"""Where, under the project folder, a started server writes its log."""
PORTS_LOCK = Path(tempfile.gettempdir()) / "agentflow-model-server-ports.lock"
PORT_CLAIMS = Path(tempfile.gettempdir()) / "agentflow-model-server-ports.json"
"""Ports chosen for servers still loading, by every agentflow process of the machine (ports are the
machine's, not one project's): ``{port: [pid, claimed until]}``, guarded by :data:`PORTS_LOCK`."""
_PROBE_TIMEOUT_S = 2.0
_POLL_S = 0.2
_TAIL_LINES = 15

# The child: `python -m agentflow.model_server` with a watchdog thread that stops the server (SIGTERM, which
# the server handles gracefully) once the process that started it is gone, even after a SIGKILL.
_CHILD = """\
import os, runpy, signal, sys, threading, time
parent = int(sys.argv.pop(1))
def watch():
    while os.getppid() == parent:
        time.sleep(0.5)
    os.kill(os.getpid(), signal.SIGTERM)
threading.Thread(target=watch, daemon=True).start()
runpy.run_module("agentflow.model_server", run_name="__main__", alter_sys=True)
"""


class StartFailed(Exception):
    """Why a started server never answered (the message completes a sentence)."""


def spawn(launch: ServerLaunch, name: str, port: int, root: Path,
          log_file: IO[bytes]) -> tuple[subprocess.Popen[bytes], str]:
    """Start ``agentflow model-server serve`` for ``name`` on ``127.0.0.1:port`` in ``root``, logging to
    ``log_file``; returns the process and the command as a user would type it."""
    argv = ["serve", "--model", launch.model or name, "--host", "127.0.0.1", "--port", str(port),
            "--served-model-name", name, *launch.args]
    shown = "agentflow model-server " + " ".join(argv)
    log_file.write(f"# agentflow started: {shown} (for pid {os.getpid()}, {time.ctime()})\n".encode())
    log_file.flush()
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(os.getpid()), *argv], cwd=root, env=_child_env(),
        stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT,
    )
    return process, shown


def wait_ready(process: subprocess.Popen[bytes], api_base: str, name: str, launch: ServerLaunch,
               window: int | None) -> None:
    """Return once the server answers for ``name``; :class:`StartFailed` if it exits, serves a
    smaller context than ``window`` or is not up within ``launch.start_timeout_s``."""
    started = time.monotonic()
    while True:
        code = process.poll()
        if code is not None:
            raise StartFailed(f"exited with code {code} after {time.monotonic() - started:.1f} s")
        if serves(api_base, name):
            if window is not None and not serves(api_base, name, window):
                raise StartFailed(f"serves fewer than the entry's context_window of {window} tokens "
                                  "(raise --max-len in serve.args, or lower context_window)")
            return
        if time.monotonic() - started > launch.start_timeout_s:
            raise StartFailed(f"did not answer {api_base.removesuffix('/v1')}/health within "
                              f"{launch.start_timeout_s:g} s (serve.start_timeout_s)")
        time.sleep(_POLL_S)


def serves(api_base: str, name: str, window: int | None = None, *, api_key: str | None = None) -> bool:
    """Whether a server at ``api_base`` is healthy and serves ``name`` with at least ``window`` tokens."""
    base = api_base.rstrip("/")
    origin = base[: -len("/v1")] if base.endswith("/v1") else base
    if _get_json(origin + "/health", api_key) is None:
        return False
    listed = _get_json(base + "/models", api_key) or {}
    for model in listed.get("data") or []:
        if isinstance(model, dict) and model.get("id") == name:
            served = model.get("max_model_len")
            return window is None or not isinstance(served, int) or served >= window
    return False


def tail(path: Path | None, lines: int = _TAIL_LINES) -> str:
    """The last lines of a log, indented, for an error message."""
    if path is None or not path.is_file():
        return "  (no log)"
    text = path.read_bytes()[-16_384:].decode("utf-8", errors="replace")
    return "\n".join("  " + line for line in text.splitlines()[-lines:]) or "  (empty)"


def open_log(log_dir: Path, name: str) -> tuple[Path, IO[bytes]]:
    """``<name>.log``, or ``<name>-2.log`` and so on while another running server holds it (the
    server keeps the file's lock while it runs, since it writes to the same open file)."""
    log_dir.mkdir(parents=True, exist_ok=True)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "model"
    if fcntl is None:  # pragma: no cover - no flock: one log per process
        path = log_dir / f"{slug}-{os.getpid()}.log"
        return path, path.open("wb")
    for index in range(1, 100):
        path = log_dir / (f"{slug}.log" if index == 1 else f"{slug}-{index}.log")
        handle = path.open("ab")
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            continue
        handle.truncate(0)
        return path, handle
    raise StartFailed(f"found 99 model servers already logging to {log_dir}")


def claim_port(hold_s: float) -> int:
    """A free port of 127.0.0.1 that no other agentflow process has claimed for a server that is
    still loading (a server binds its port only once its model is loaded, seconds later). Release
    it with :func:`unclaim_port` once the server answers or has failed; a claim also lapses after
    ``hold_s`` seconds or when its process is gone."""
    with _locked(PORTS_LOCK):
        now = time.time()
        claims = {port: claim for port, claim in _read_claims().items()
                  if claim[1] > now and _alive(claim[0])}
        port = next((p for p in (_free_port() for _ in range(64)) if p not in claims), 0)
        if not port:
            raise StartFailed("found no free port of 127.0.0.1 that another model server was not loading on")
        claims[port] = (os.getpid(), now + hold_s)
        _write_claims(claims)
    return port


def unclaim_port(port: int) -> None:
    """The server on ``port`` is up (the port is its own now) or gone."""
    with _locked(PORTS_LOCK):
        claims = _read_claims()
        if claims.pop(port, None) is not None:
            _write_claims(claims)


def _read_claims() -> dict[int, tuple[int, float]]:
    try:
        raw = json.loads(PORT_CLAIMS.read_text(encoding="utf-8"))
        return {int(port): (int(pid), float(until)) for port, (pid, until) in raw.items()}
    except (OSError, ValueError, TypeError, AttributeError):  # none yet, or unreadable: no claims
        return {}


def _write_claims(claims: dict[int, tuple[int, float]]) -> None:
    temp = PORT_CLAIMS.with_name(f"{PORT_CLAIMS.name}.{os.getpid()}")
    with contextlib.suppress(OSError):  # another user's file: the port was free when chosen, at least
        temp.write_text(json.dumps({str(p): list(c) for p, c in claims.items()}), encoding="utf-8")
        os.replace(temp, PORT_CLAIMS)


def _alive(pid: int) -> bool:
    if os.name == "nt":  # pragma: no cover - signal 0 means something else there: expiry decides
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    return True


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _child_env() -> dict[str, str]:
    """The environment of the server: ours, with this agentflow importable wherever the project is."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    env.setdefault("PYTHONUNBUFFERED", "1")  # the log shows what happened up to a crash
    return env


def post_json(url: str, body: dict[str, Any], api_key: str | None) -> dict[str, Any] | None:
    """POST ``body`` as JSON to the server; its JSON reply, or None when there is no answer or an error."""
    return _get_json(url, api_key, body)


def _get_json(url: str, api_key: str | None, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
    import urllib.request  # here: the router imports this package's modules, `agentflow --help` need not

    # no proxy: the server is on this machine, and a proxy from the environment must not see it
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    data = None
    if body is not None:
        data = json.dumps(body).encode("utf-8")
        headers["Content-Type"] = "application/json"
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with opener.open(request, timeout=_PROBE_TIMEOUT_S) as response:
            data = json.loads(response.read())
    except (OSError, ValueError):  # refused, timed out, HTTP error, not JSON: no server there
        return None
    return data if isinstance(data, dict) else None


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    if fcntl is None:  # pragma: no cover
        yield
        return
    try:  # read-only is enough for flock, so another user's lock file works too
        fd = os.open(path, os.O_RDONLY | os.O_CREAT, 0o666)
    except OSError:  # an unwritable temp folder: go unlocked rather than not at all
        yield
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)
