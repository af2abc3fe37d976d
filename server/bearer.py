"""``Authorization: Bearer <personal API token>``: how a script's request or WebSocket is
signed in (``server.api_tokens`` keeps the tokens).

Such a request acts as the token's user, needs no CSRF header (a browser never adds an
``Authorization`` header to a cross-site request by itself; the page's own requests use the
session cookie) and ignores any cookie it carries; a revoked, expired or unknown token is
401 on every request, with RFC 6750's ``WWW-Authenticate: Bearer error="invalid_token"``.
"""
from __future__ import annotations

import asyncio
import time
from typing import Optional

from fastapi import HTTPException, WebSocket
from starlette.requests import HTTPConnection

from server import api_tokens
from server.events import close_quietly

CHALLENGE = {"WWW-Authenticate": 'Bearer error="invalid_token"'}


def bearer_secret(connection: HTTPConnection) -> Optional[str]:
    """The secret of the ``Authorization: Bearer <secret>`` header ("" when empty), or None
    when the request or WebSocket carries no bearer credentials."""
    scheme, _, secret = (connection.headers.get("authorization") or "").partition(" ")
    return secret.strip() if scheme.lower() == "bearer" else None


def token_user(connection: HTTPConnection, secret: str) -> int:
    """The user ``secret`` acts as; 401 saying why (unknown, revoked, expired) otherwise."""
    try:
        return api_tokens.check(connection.app.state.db, secret, time.time()).user_id
    except api_tokens.TokenRefused as exc:
        raise HTTPException(401, str(exc), headers=CHALLENGE) from None


def websocket_token(connection: HTTPConnection, secret: str) -> Optional[api_tokens.TokenUse]:
    """The token a WebSocket's bearer ``secret`` names, or None when it acts as nobody."""
    try:
        return api_tokens.check(connection.app.state.db, secret, time.time())
    except api_tokens.TokenRefused:
        return None


async def close_when_unusable(websocket: WebSocket, token: api_tokens.TokenUse, recheck_s: float) -> None:
    """Close ``websocket`` (code 4401, saying why) the moment ``token`` expires, or within
    ``recheck_s`` of its revocation by another server process (a revocation by this process
    closes it at once: ``Hub.close_token``). Runs until then; cancel it when the socket ends."""
    db = websocket.app.state.db
    loop = asyncio.get_running_loop()
    while True:
        wait = recheck_s if token.expires_at is None else min(recheck_s, max(0.0, token.expires_at - time.time()))
        await asyncio.sleep(wait)
        reason = await loop.run_in_executor(None, api_tokens.why_unusable, db, token.token_id, time.time())
        if reason is not None:
            await close_quietly(websocket, 4401, reason)
            return
