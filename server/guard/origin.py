"""The same-origin rule of state changes (RFC 6454): scheme, host and port must all match.

A browser sends ``Origin: scheme://host[:port]`` with every state-changing request and every
WebSocket handshake; the request itself reached ``scope["scheme"]`` (``https`` when a
trusted proxy says so, see ``--behind-proxy``) at its Host header. ``http://site`` and
``https://site`` are different origins, and so are two ports of one host: a page on another
port of the same machine may not act for this one.
"""
from __future__ import annotations

from typing import Optional
from urllib.parse import urlsplit

DEFAULT_PORTS = {"http": 80, "https": 443}
_WEB_SCHEME = {"ws": "http", "wss": "https"}


def _triple(scheme: str, netloc: str) -> Optional[tuple[str, str, int]]:
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname or parts.username is not None or parts.path or parts.query:
        return None
    scheme = scheme.lower()
    return scheme, parts.hostname.lower(), port if port is not None else DEFAULT_PORTS.get(scheme, -1)


def origin_of(scheme: str, host: Optional[str]) -> Optional[tuple[str, str, int]]:
    """``(scheme, host, port)`` of a request that arrived by ``scheme`` (``ws``/``wss``
    count as ``http``/``https``) with this Host header; None without a usable Host."""
    if not host:
        return None
    return _triple(_WEB_SCHEME.get(scheme, scheme), host)


def same_origin(origin: Optional[str], scheme: str, host: Optional[str]) -> bool:
    """True when there is no Origin header (a script, not a browser page: the CSRF header
    guards those), or when it names exactly the origin the request arrived at."""
    if not origin:
        return True
    scheme_part, sep, netloc = origin.strip().partition("://")
    if not sep or scheme_part.lower() not in DEFAULT_PORTS:
        return False  # "null" (sandboxed frames, file: pages) and anything odd
    theirs = _triple(scheme_part, netloc.rstrip("/") if netloc.endswith("/") and netloc.count("/") == 1 else netloc)
    ours = origin_of(scheme, host)
    return theirs is not None and theirs == ours
