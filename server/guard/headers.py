"""ASGI middleware: security headers on every HTTP response.

- ``Content-Security-Policy`` (:func:`policy`): scripts only from this origin, plus inline
  scripts carrying this response's nonce (``request.state.csp_nonce``, 18 random bytes,
  new per response; a page puts it on its inline ``<script>`` tags before it inserts any
  data, see ``nonce_page``), and ``'wasm-unsafe-eval'``, which Pyodide needs to compile
  WebAssembly; never ``'unsafe-inline'``; ``'unsafe-eval'`` only on the pages that run
  PyScript, whose core needs it (``PYSCRIPT_PAGES``). ``connect-src`` is this
  origin and its WebSocket origin; ``object-src 'none'``, ``base-uri 'none'``,
  ``frame-ancestors 'none'`` (no page of the hub can be framed: clickjacking).
  What the page needs was checked in Chromium (``e2e/``: every e2e test fails on a
  ``securitypolicyviolation``); ``server/DECISIONS.md`` lists each directive's reason.
- ``X-Content-Type-Options: nosniff``, ``Referrer-Policy: same-origin``,
  ``X-Frame-Options: DENY`` (frame-ancestors for older browsers).
- ``Cache-Control: no-store`` on JSON answers that set no Cache-Control of their own
  (API answers hold a user's data; no shared or disk cache keeps them).
"""
from __future__ import annotations

import re
import secrets

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.guard.hosts import host_name

NONCE_PLACEHOLDER = "{{CSP_NONCE}}"
_SAFE_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d+)?|\[[0-9A-Fa-f:.]+\](:\d+)?")


PYSCRIPT_PAGES = ("/",)
PYSCRIPT_PREFIXES = ("/test-pages/",)
"""Pages that run PyScript (the export page; the test and bench pages, served with the
test hooks only): PyScript 0.7.31's core builds its worker hooks with ``Function(...)``
when it starts, so these pages need ``'unsafe-eval'``; every other page goes without."""


WORKER_PAGES = ("/test-pages/test/client_worker.html",)
"""Test pages that start a PyScript worker (``PyWorker``, the Python client in Pyodide),
which PyScript 0.7.31 makes from a ``blob:`` URL: they also get ``worker-src 'self' blob:``.
No product page starts a worker."""


def runs_pyscript(path: str) -> bool:
    return path in PYSCRIPT_PAGES or path.startswith(PYSCRIPT_PREFIXES)


def policy(nonce: str, ws_origin: str = "", pyscript: bool = False, workers: bool = False) -> str:
    """The Content-Security-Policy of a response with ``nonce``; ``ws_origin``
    (``ws://host:port``) is added to connect-src when known; ``pyscript`` adds
    ``'unsafe-eval'`` (see ``PYSCRIPT_PAGES``); ``workers`` adds ``worker-src 'self' blob:``
    (see ``WORKER_PAGES``)."""
    directives = [
        "default-src 'self'",
        f"script-src 'self' 'nonce-{nonce}' 'wasm-unsafe-eval'" + (" 'unsafe-eval'" if pyscript else ""),
        "style-src 'self'",
        "img-src 'self' data:",
        "font-src 'self'",
        f"connect-src 'self'{' ' + ws_origin if ws_origin else ''}",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
    if workers:
        directives.append("worker-src 'self' blob:")
    return "; ".join(directives)


def ws_origin_of(scope: Scope) -> str:
    """``ws://host`` (``wss://`` over https) of the Host the request named, or "" when the
    header is not a plain host (it then stays out of the policy)."""
    host = dict(scope.get("headers", [])).get(b"host", b"").decode("latin-1").strip()
    if not host or host_name(host) is None or not _SAFE_HOST.fullmatch(host):
        return ""
    return f"{'wss' if scope.get('scheme') == 'https' else 'ws'}://{host}"


def nonce_page(template: str, nonce: str) -> str:
    """``template`` with this response's nonce in place of ``{{CSP_NONCE}}``. Call it
    before inserting anything else into the page: text inserted later cannot gain the nonce."""
    return template.replace(NONCE_PLACEHOLDER, nonce)


class SecurityHeaders:
    """See the module docstring."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        nonce = secrets.token_urlsafe(18)
        scope.setdefault("state", {})["csp_nonce"] = nonce
        csp = policy(nonce, ws_origin_of(scope), runs_pyscript(scope["path"]), scope["path"] in WORKER_PAGES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers["Content-Security-Policy"] = csp
                headers["X-Content-Type-Options"] = "nosniff"
                headers["Referrer-Policy"] = "same-origin"
                headers["X-Frame-Options"] = "DENY"
                if headers.get("content-type", "").startswith("application/json") and "cache-control" not in headers:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, send_with_headers)
