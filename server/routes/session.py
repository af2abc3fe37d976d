"""Sign-in and sign-out: the one-time link, username and password, the session cookie."""
from __future__ import annotations

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from pydantic import BaseModel

from server import accounts, auth
from server.db import Database
from server.routes.deps import services
from server.services import Services

router = APIRouter()


class SessionBody(BaseModel):
    username: str
    password: str


def _set_session(db: Database, response: Response, user_id: int) -> None:
    token = auth.new_session(db, user_id)
    response.set_cookie(
        auth.SESSION_COOKIE, token, httponly=True, samesite="strict", max_age=auth.SESSION_SECONDS, path="/"
    )


@router.get("/login")
def login_with_token(token: str = "", svc: Services = Depends(services)):
    user_id = auth.use_login_token(svc.db, token) if token else None
    if user_id is None:
        return HTMLResponse(
            "<!doctype html><title>Sign-in link used</title><p>This sign-in link is unknown or was already used."
            " Restart the server for a new one, or <a href='/signin'>sign in with a password</a>.</p>",
            status_code=403,
        )
    response = RedirectResponse("/", status_code=303)
    _set_session(svc.db, response, user_id)
    return response


@router.post("/api/session")
def sign_in(request: Request, body: SessionBody, svc: Services = Depends(services)):
    if request.headers.get(auth.CSRF_HEADER) != auth.CSRF_VALUE or not auth.same_origin(
        request.headers.get("origin"), request.headers.get("host")
    ):
        raise HTTPException(403, "cross-site request refused")
    user_id = auth.check_password(svc.db, body.username, body.password)
    if user_id is None:
        raise HTTPException(401, "wrong username or password")
    response = JSONResponse({"username": body.username})
    _set_session(svc.db, response, user_id)
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
