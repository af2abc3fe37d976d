"""Users, sessions and the one-time login token (like Jupyter's).

Passwords are hashed with argon2-cffi. Sessions are random tokens kept as SHA-256 hashes;
the cookie is HttpOnly and SameSite=Strict. A state change needs the header
``X-Requested-With: cellhub`` (which a cross-site form cannot send) and, when the browser
sends an Origin, the page's own origin.
"""
from __future__ import annotations

import hashlib
import secrets
import time
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request, WebSocket

from server import accounts
from server import bearer
from server.db import Database

SESSION_COOKIE = "cellhub_session"
SESSION_SECONDS = 14 * 24 * 3600
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "cellhub"
DEFAULT_USER = accounts.DEFAULT_USER

_hasher = PasswordHasher()


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """argon2id hash of ``password`` (raises ValueError for an empty password)."""
    if not password:
        raise ValueError("password must not be empty")
    return _hasher.hash(password)


def add_user(db: Database, username: str, password: str) -> int:
    """Create user ``username`` with ``password``; raises ValueError if it exists or is invalid."""
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError("username must be 1-64 letters, digits, '.', '-' or '_'")
    if accounts.user_id(db, username) is not None:
        raise ValueError(f"user {username!r} already exists")
    return accounts.insert_user(db, username, hash_password(password))


def check_password(db: Database, username: str, password: str) -> Optional[int]:
    """The user's id if the password matches, else None."""
    found = accounts.credentials(db, username)
    if found is None or not found[1]:
        return None
    try:
        _hasher.verify(found[1], password)
    except (VerificationError, InvalidHashError):
        return None
    return found[0]


def new_login_token(db: Database, user_id: int) -> str:
    token = secrets.token_urlsafe(24)
    accounts.insert_login_token(db, _h(token), user_id, time.time())
    return token


def use_login_token(db: Database, token: str) -> Optional[int]:
    """Spend a one-time login token; the user's id, or None if unknown or used."""
    return accounts.spend_login_token(db, _h(token))


def new_session(db: Database, user_id: int) -> str:
    token = secrets.token_urlsafe(32)
    now = time.time()
    accounts.insert_session(db, _h(token), user_id, now, now + SESSION_SECONDS)
    return token


def end_session(db: Database, token: str) -> None:
    accounts.delete_session(db, _h(token))


def session_user(db: Database, token: Optional[str]) -> Optional[int]:
    if not token:
        return None
    return accounts.session_owner(db, _h(token), time.time())


def same_origin(origin: Optional[str], host: Optional[str]) -> bool:
    """True when there is no Origin header, or it names the host the request was sent to."""
    if not origin:
        return True
    if not host:
        return False
    return origin.split("://", 1)[-1].rstrip("/") == host


def require_user(request: Request) -> int:
    """FastAPI dependency: the signed-in user's id; 401 without a session, 403 for a forged
    state change (missing CSRF header or foreign Origin). A bearer API token stands for both
    (``server.bearer``)."""
    if (secret := bearer.bearer_secret(request)) is not None:
        return bearer.token_user(request, secret)
    db: Database = request.app.state.db
    user_id = session_user(db, request.cookies.get(SESSION_COOKIE))
    if user_id is None:
        raise HTTPException(status_code=401, detail="sign in first")
    if request.method not in ("GET", "HEAD", "OPTIONS"):
        if request.headers.get(CSRF_HEADER) != CSRF_VALUE or not same_origin(
            request.headers.get("origin"), request.headers.get("host")
        ):
            raise HTTPException(status_code=403, detail="cross-site request refused")
    return user_id


def websocket_user(websocket: WebSocket) -> Optional[int]:
    db: Database = websocket.app.state.db
    if not same_origin(websocket.headers.get("origin"), websocket.headers.get("host")):
        return None
    return session_user(db, websocket.cookies.get(SESSION_COOKIE))
