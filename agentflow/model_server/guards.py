"""HTTP guards in front of a local server's routes: the Host header, the API key and the body size.

They are plain ASGI middlewares (no ``BaseHTTPMiddleware``, which would buffer streamed responses and hide
client disconnects) with no dependency on the server's engine, so the trace viewer uses the Host check too.

- **Host**: a server bound to loopback answers only requests whose ``Host`` names loopback (``127.0.0.1``,
  ``localhost``, ``[::1]``, any port) or a name given with ``--allow-host``. A web page on another site
  that re-points its own DNS name at 127.0.0.1 (DNS rebinding) sends its own name, so it is refused.
  Bound to all interfaces (``0.0.0.0``, ``::``) with no ``--allow-host``, the check is off, with a warning:
  the server cannot know the names clients use to reach it.
- **API key**: with a key set, every route but the open ones (``/health``) needs ``Authorization: Bearer``.
- **Body size**: a body over the limit is answered 413 as soon as its ``Content-Length``, or the bytes
  counted so far, exceed it; nothing past the limit is kept, and the app never sees the body.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Collection, Sequence
from typing import Any

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LOOPBACK_HOSTS: tuple[str, ...] = ("127.0.0.1", "localhost", "[::1]")
ALL_INTERFACES = frozenset({"0.0.0.0", "::", "[::]", ""})

ErrorBody = Callable[[str], dict[str, Any]]


def _bracketed(host: str) -> str:
    """An IPv6 literal as it appears in a Host header (``[::1]``); anything else lower-cased."""
    host = host.strip().lower().rstrip(".")
    if ":" in host and not host.startswith("["):
        return f"[{host}]"
    return host


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address) can only be reached from this machine."""
    name = host.strip().strip("[]").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hosts(bind: str, extra: Sequence[str] = ()) -> tuple[str, ...] | None:
    """The Host names a server bound to ``bind`` answers (``None``: any), with ``extra`` (``--allow-host``).

    ``*`` in ``extra`` allows any host; ``*.example.com`` allows that domain's subdomains. Bound to all
    interfaces with no ``extra``, any host is allowed (see :func:`unchecked_warning`): a LAN server is
    reached by names it cannot know. Raises ``ValueError`` for a malformed pattern.
    """
    names = [_bracketed(n) for n in extra if n.strip()]
    for name in names:
        if "*" in name[1:] or (name.startswith("*") and name != "*" and not name.startswith("*.")):
            raise ValueError(f"allowed host {name!r} is not valid; use a name, an address, '*.domain' or '*'")
    if "*" in names or (bind.strip().lower() in ALL_INTERFACES and not names):
        return None
    own = [] if bind.strip().lower() in ALL_INTERFACES or is_loopback(bind) else [_bracketed(bind)]
    return tuple(dict.fromkeys([*LOOPBACK_HOSTS, *own, *names]))


def unchecked_warning(bind: str, extra: Sequence[str], option: str) -> str | None:
    """The warning to print when :func:`allowed_hosts` turns the check off without being asked to."""
    if bind.strip().lower() in ALL_INTERFACES and not any(n.strip() for n in extra):
        return (f"listening on all interfaces ({bind or 'no host given'}) with no {option}: the Host header is "
                "not checked, so a web page could reach this server by DNS rebinding; pass "
                f"{option} NAME for each name clients use")
    return None


def host_name(header: str) -> str:
    """The host part of a Host header, lower-cased, port and trailing dot removed (``[::1]`` kept bracketed)."""
    header = header.strip().lower()
    if header.startswith("["):
        end = header.find("]")
        return header[: end + 1] if end > 0 else header
    return header.rsplit(":", 1)[0].rstrip(".") if header.count(":") == 1 else header.rstrip(".")


def host_allowed(header: str, allowed: Collection[str]) -> bool:
    """Whether a Host header matches one of ``allowed`` (exact names, or ``*.domain`` suffixes)."""
    name = host_name(header)
    return bool(name) and any(name == a or (a.startswith("*.") and name.endswith(a[1:])) for a in allowed)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None


class HostGuard:
    """Refuse (403) requests whose Host header is not an allowed name; ``allowed=None`` lets all through."""

    def __init__(self, app: ASGIApp, *, allowed: Sequence[str] | None, error: ErrorBody, option: str) -> None:
        self.app, self.allowed, self.error, self.option = app, allowed, error, option

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.allowed is None or scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        header = _header(scope, b"host") or ""
        if host_allowed(header, self.allowed):
            await self.app(scope, receive, send)
            return
        if scope["type"] == "websocket":
            await receive()  # the connect event, then a policy-violation close
            await send({"type": "websocket.close", "code": 1008})
            return
        message = (f"Host header {header!r} is not allowed; this server answers to "
                   f"{', '.join(self.allowed)} (any port); to reach it by another name, start it with "
                   f"{self.option} NAME")
        await JSONResponse(self.error(message), 403)(scope, receive, send)


class KeyGuard:
    """With ``api_key`` set, refuse (401) every request to a path outside ``open_paths`` without the key."""

    def __init__(self, app: ASGIApp, *, api_key: str | None, open_paths: Collection[str], error: ErrorBody) -> None:
        self.app, self.error, self.open_paths = app, error, frozenset(open_paths)
        self.expected = f"Bearer {api_key}".encode() if api_key is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.expected is None or scope["type"] != "http" or scope.get("path") in self.open_paths:
            await self.app(scope, receive, send)
            return
        header = (_header(scope, b"authorization") or "").encode("latin-1")
        if secrets.compare_digest(header, self.expected):
            await self.app(scope, receive, send)
            return
        response = JSONResponse(self.error("missing or wrong API key (send 'Authorization: Bearer <key>')"), 401,
                                headers={"WWW-Authenticate": "Bearer"})
        await response(scope, receive, send)


class BodyLimit:
    """Answer 413 to a request body over ``max_bytes``, checked before the app parses anything."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, error: ErrorBody, option: str) -> None:
        self.app, self.max_bytes, self.error, self.option = app, max_bytes, error, option

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = _header(scope, b"content-length")
        if length is not None and not length.strip().isdigit():
            await JSONResponse(self.error(f"Content-Length {length!r} is not a number"), 400)(scope, receive, send)
            return
        if length is not None and int(length) > self.max_bytes:
            await self._refuse(scope, receive, send, f"{int(length)} bytes")
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away before sending its body
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                await self._refuse(scope, receive, send, f"more than {self.max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: str) -> None:
        message = (f"the request body has {size}, over this server's limit of {self.max_bytes} bytes "
                   f"(set with {self.option})")
        # Nothing more of the body is read into memory; the connection closes after the answer.
        await JSONResponse(self.error(message), 413, headers={"Connection": "close"})(scope, receive, send)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that hands the buffered body over once, then passes through (for disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
