"""ASGI middleware: a request must name this server in its Host header (``--allowed-hosts``).

A page served under a name the server does not know can be the work of DNS rebinding (a
foreign site whose name resolves to 127.0.0.1 then talks to the server as "same origin"),
and absolute URLs or links built from the Host header would point elsewhere. So HTTP
requests and WebSocket handshakes whose Host (its name, without the port; a bracketed IPv6
address without its brackets) is not allowed get 400 ``{"detail": "..."}`` (a WebSocket is
refused before it is accepted). Names compare case-insensitively; ``*.example.org`` allows
every subdomain of example.org.

Default (:func:`default_allowed_hosts`): the host the server listens on, unless it is a
wildcard address, plus ``localhost``, ``127.0.0.1`` and ``::1``.
"""
from __future__ import annotations

from typing import Iterable, Optional

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = ("", "0.0.0.0", "::")


def default_allowed_hosts(listen_host: str) -> list[str]:
    """The names a server listening on ``listen_host`` answers to by default."""
    names = [] if listen_host in WILDCARDS else [listen_host]
    return names + [n for n in LOCAL_NAMES if n not in names]


def host_name(header: str) -> Optional[str]:
    """The name part of a Host header (lower case, no port, IPv6 without brackets), or None
    when it is not a well-formed host (empty, user info, a path, spaces)."""
    header = header.strip().lower()
    if not header or any(c in header for c in "/@\\ \t?#"):
        return None
    if header.startswith("["):
        end = header.find("]")
        if end < 0 or (header[end + 1:] and not header[end + 1:].startswith(":")):
            return None
        name, port = header[1:end], header[end + 2:]
    else:
        name, _, port = header.partition(":")
    if port and not port.isdigit():
        return None
    return name or None


def is_allowed(name: str, allowed: Iterable[str]) -> bool:
    """``name`` (as :func:`host_name` gives it) matches one of ``allowed``."""
    for pattern in allowed:
        pattern = pattern.lower().strip("[]")
        if pattern == "*" or name == pattern:
            return True
        if pattern.startswith("*.") and name.endswith(pattern[1:]) and len(name) > len(pattern) - 1:
            return True
    return False


class AllowedHosts:
    """See the module docstring; ``allowed``: names or ``*.domain`` patterns."""

    def __init__(self, app: ASGIApp, allowed: Iterable[str]) -> None:
        self.app = app
        self.allowed = [a for a in allowed if a]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        header = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1")
        name = host_name(header)
        if name is not None and is_allowed(name, self.allowed):
            return await self.app(scope, receive, send)
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            return await send({"type": "websocket.close", "code": 1008})
        shown = header if len(header) <= 100 else header[:100] + "..."
        response = JSONResponse(status_code=400, content={
            "detail": f"this server does not answer to the host {shown!r} (see --allowed-hosts)"})
        return await response(scope, receive, send)
