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

from server.db import Database

SESSION_COOKIE = "cellhub_session"
SESSION_SECONDS = 14 * 24 * 3600
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "cellhub"
DEFAULT_USER = "local"

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
    if db.one("SELECT 1 FROM users WHERE username = ?", (username,)):
        raise ValueError(f"user {username!r} already exists")
    return db.ensure_user(username, hash_password(password))


def check_password(db: Database, username: str, password: str) -> Optional[int]:
    """The user's id if the password matches, else None."""
    row = db.one("SELECT id, password_hash FROM users WHERE username = ?", (username,))
    if row is None or not row["password_hash"]:
        return None
    try:
        _hasher.verify(row["password_hash"], password)
    except (VerificationError, InvalidHashError):
        return None
    return int(row["id"])


def new_login_token(db: Database, user_id: int) -> str:
    token = secrets.token_urlsafe(24)
    db.execute(
        "INSERT INTO login_tokens(token_hash, user_id, created_at) VALUES (?, ?, ?)", (_h(token), user_id, time.time())
    )
    return token


def use_login_token(db: Database, token: str) -> Optional[int]:
    """Spend a one-time login token; the user's id, or None if unknown or used."""
    cur = db.execute("UPDATE login_tokens SET used = 1 WHERE token_hash = ? AND used = 0", (_h(token),))
    if cur.rowcount != 1:
        return None
    row = db.one("SELECT user_id FROM login_tokens WHERE token_hash = ?", (_h(token),))
    return int(row["user_id"]) if row else None


def new_session(db: Database, user_id: int) -> str:
    token = secrets.token_urlsafe(32)
    now = time.time()
    db.execute(
        "INSERT INTO sessions(token_hash, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        (_h(token), user_id, now, now + SESSION_SECONDS),
    )
    return token


def end_session(db: Database, token: str) -> None:
    db.execute("DELETE FROM sessions WHERE token_hash = ?", (_h(token),))


def session_user(db: Database, token: Optional[str]) -> Optional[int]:
    if not token:
        return None
    row = db.one("SELECT user_id, expires_at FROM sessions WHERE token_hash = ?", (_h(token),))
    if row is None or row["expires_at"] < time.time():
        return None
    return int(row["user_id"])


def same_origin(origin: Optional[str], host: Optional[str]) -> bool:
    """True when there is no Origin header, or it names the host the request was sent to."""
    if not origin:
        return True
    if not host:
        return False
    return origin.split("://", 1)[-1].rstrip("/") == host


def require_user(request: Request) -> int:
    """FastAPI dependency: the signed-in user's id; 401 without a session, 403 for a forged
    state change (missing CSRF header or foreign Origin)."""
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
