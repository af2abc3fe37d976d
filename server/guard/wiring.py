"""``add_guards(app, settings)``: the guard middleware in their order, one line each.

Starlette runs the middleware added last first, so a request meets them in this order:
the security headers (on every answer, the guards' refusals too), the trusted proxy's
headers (scheme and client address, only with ``--behind-proxy``), the Host check, the
body bounds, then the app.
"""
from __future__ import annotations

from fastapi import FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from server.guard.bodies import BoundedBodies
from server.guard.headers import SecurityHeaders
from server.guard.hosts import AllowedHosts


def add_guards(app: FastAPI, settings) -> None:
    """Wrap ``app`` in the guards ``settings`` (``server.settings.Settings``) asks for."""
    app.add_middleware(BoundedBodies)
    app.add_middleware(AllowedHosts, allowed=settings.allowed_hosts)
    if settings.behind_proxy:
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=list(settings.behind_proxy))
    app.add_middleware(SecurityHeaders)
