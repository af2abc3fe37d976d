"""Sign-in and sign-out: the one-time link, username and password, the session cookie.

Password sign-in goes through the sign-in guard (``server.guard.signin``: throttled per name
and address, 429 with Retry-After, bounded in parallel); a one-time link works
``--login-link-minutes`` and only on the server start that printed it. The cookie is
``Secure`` over https (or behind a trusted proxy that says so) and with ``--secure-cookies``.
"""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from server import accounts, auth
from server.guard.signin import Throttled
from server.routes.deps import services
from server.services import Services

router = APIRouter()


class SessionBody(BaseModel):
    username: str = Field(max_length=256)
    password: str = Field(max_length=auth.MAX_PASSWORD_CHARS)


def _set_session(svc: Services, request: Request, response: Response, user_id: int) -> None:
    token = auth.new_session(svc.db, user_id)
    secure = svc.settings.secure_cookies or request.url.scheme == "https"
    response.set_cookie(auth.SESSION_COOKIE, token, httponly=True, samesite="strict",
                        max_age=auth.SESSION_SECONDS, path="/", secure=secure)


@router.get("/login")
def login_with_token(request: Request, token: str = "", svc: Services = Depends(services)):
    user_id = (auth.use_login_token(svc.db, token, svc.boot_id, svc.settings.login_link_minutes * 60)
               if token else None)
    if user_id is None:
        return HTMLResponse(
            "<!doctype html><title>Sign-in link used</title><p>This sign-in link is unknown, was already used,"
            " is older than the server's last start or has expired. Restart the server for a new one,"
            " or <a href='/signin'>sign in with a password</a>.</p>",
            status_code=403,
        )
    response = RedirectResponse("/", status_code=303)
    _set_session(svc, request, response, user_id)
    return response


@router.post("/api/session")
async def sign_in(request: Request, body: SessionBody, svc: Services = Depends(services)):
    if not auth.genuine_state_change(request):
        raise HTTPException(403, "cross-site request refused")
    try:
        user_id = await svc.signin.sign_in(request.client.host if request.client else "",
                                           body.username, body.password)
    except Throttled as exc:
        return JSONResponse(status_code=429, content={"detail": exc.reason},
                            headers={"Retry-After": str(exc.retry_after)})
    if user_id is None:
        raise HTTPException(401, "wrong username or password")
    response = JSONResponse({"username": body.username})
    await run_in_threadpool(_set_session, svc, request, response, user_id)
    return response


@router.delete("/api/session")
def sign_out(request: Request, user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    auth.end_session(svc.db, request.cookies.get(auth.SESSION_COOKIE, ""))
    response = JSONResponse({"signed_out": True})
    response.delete_cookie(auth.SESSION_COOKIE, path="/")
    return response


@router.get("/api/session")
def whoami(user_id: int = Depends(auth.require_user), svc: Services = Depends(services)):
    return {"username": accounts.username(svc.db, user_id)}
