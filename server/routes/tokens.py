"""Personal API tokens: ``POST /api/tokens`` (201, the secret shown once), ``GET /api/tokens``
(never a secret), ``DELETE /api/tokens/{id}`` (revoked at once, open WebSockets opened with
it closed).

Tokens are managed from a signed-in browser session only: a request made with a bearer token
is 403 here, so a leaked token can neither mint tokens that outlive it nor revoke the
owner's others.
"""
from __future__ import annotations

import time

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from app.api_tokens import ApiToken, NewApiToken, TokenRequest
from server import api_tokens, auth, bearer
from server.routes.deps import RowId, services
from server.services import Services

router = APIRouter()


def session_user(request: Request) -> int:
    """FastAPI dependency: the user of the browser session (``auth.require_user``); 403 for a
    request signed with an API token."""
    if bearer.bearer_secret(request) is not None:
        raise HTTPException(403, "API tokens are managed from a signed-in browser session, not with a token")
    return auth.require_user(request)


@router.post("/api/tokens", status_code=201, response_model=NewApiToken)
def create_token(body: TokenRequest, user_id: int = Depends(session_user), svc: Services = Depends(services)):
    expires = body.expires_at.timestamp() if body.expires_at is not None else None
    try:
        return api_tokens.create(svc.db, user_id, body.name, expires, time.time())
    except api_tokens.TooManyTokens as exc:
        return JSONResponse(status_code=409, content={"detail": str(exc)})


@router.get("/api/tokens", response_model=list[ApiToken])
def list_tokens(user_id: int = Depends(session_user), svc: Services = Depends(services)):
    return api_tokens.list_for(svc.db, user_id, time.time())


@router.delete("/api/tokens/{token_id}")
async def revoke_token(token_id: RowId, user_id: int = Depends(session_user), svc: Services = Depends(services)):
    if not await run_in_threadpool(api_tokens.revoke, svc.db, user_id, token_id, time.time()):
        raise HTTPException(404, "no such API token")
    closed = await svc.hub.close_token(token_id, "this API token was revoked")
    return {"revoked": token_id, "closed_sockets": closed}
