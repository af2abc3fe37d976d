"""Users, sessions and the one-time login token (like Jupyter's).

Passwords are hashed with argon2-cffi (at most ``MAX_PASSWORD_CHARS``); an unknown name
costs the same one check against a dummy hash. Sessions are random tokens kept as SHA-256
hashes; the cookie is HttpOnly and SameSite=Strict (and Secure over https or with
``--secure-cookies``). A state change needs the header ``X-Requested-With: cellhub``
(which a cross-site form cannot send) and, when the browser sends an Origin, the page's
own origin: scheme, host and port (``server.guard.origin``). One-time login links work
``--login-link-minutes`` (15) and die at the next start. Throttling: ``server.guard.signin``.
"""
from __future__ import annotations

import functools
import hashlib
import secrets
import time
from typing import Optional

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import HTTPException, Request, WebSocket

from server.db import Database
from server.guard.origin import same_origin

SESSION_COOKIE = "cellhub_session"
SESSION_SECONDS = 14 * 24 * 3600
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "cellhub"
DEFAULT_USER = "local"
MAX_PASSWORD_CHARS = 1024
LOGIN_LINK_MINUTES = 15.0
"""How long a one-time sign-in link works (``--login-link-minutes``)."""

_hasher = PasswordHasher()


def _h(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """argon2id hash of ``password`` (raises ValueError for an empty password or one longer
    than ``MAX_PASSWORD_CHARS``)."""
    if not password:
        raise ValueError("password must not be empty")
    if len(password) > MAX_PASSWORD_CHARS:
        raise ValueError(f"password must be at most {MAX_PASSWORD_CHARS} characters")
    return _hasher.hash(password)


def add_user(db: Database, username: str, password: str) -> int:
    """Create user ``username`` with ``password``; raises ValueError if it exists or is invalid."""
    username = username.strip()
    if not username or len(username) > 64 or not username.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ValueError("username must be 1-64 letters, digits, '.', '-' or '_'")
    if db.one("SELECT 1 FROM users WHERE username = ?", (username,)):
        raise ValueError(f"user {username!r} already exists")
    return db.ensure_user(username, hash_password(password))


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash(secrets.token_urlsafe(16))


def verify_password(stored_hash: str, password: str) -> bool:
    """One argon2 check of ``password`` against ``stored_hash`` (False for a malformed hash)."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def check_password(db: Database, username: str, password: str) -> Optional[int]:
    """The user's id if the password matches, else None. A name that is unknown or has no
    password costs the same one argon2 check (against a dummy hash), so the time of the
    answer does not tell which names exist."""
    row = db.one("SELECT id, password_hash FROM users WHERE username = ?", (username,))
    if row is None or not row["password_hash"]:
        verify_password(_dummy_hash(), password)
        return None
    return int(row["id"]) if verify_password(row["password_hash"], password) else None


def expire_login_tokens(db: Database) -> None:
    """Make every one-time link issued so far unusable (called at every start: a link
    printed before a restart is dead after it)."""
    db.execute("UPDATE login_tokens SET used = 1 WHERE used = 0")


def new_login_token(db: Database, user_id: int) -> str:
    token = secrets.token_urlsafe(24)
    db.execute(
        "INSERT INTO login_tokens(token_hash, user_id, created_at) VALUES (?, ?, ?)", (_h(token), user_id, time.time())
    )
    return token


def use_login_token(db: Database, token: str, max_age_seconds: float = LOGIN_LINK_MINUTES * 60) -> Optional[int]:
    """Spend a one-time login token; the user's id, or None if unknown, used, or issued more
    than ``max_age_seconds`` ago."""
    cur = db.execute("UPDATE login_tokens SET used = 1 WHERE token_hash = ? AND used = 0 AND created_at >= ?",
                     (_h(token), time.time() - max_age_seconds))
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


def genuine_state_change(request: Request) -> bool:
    """True unless a browser could have been made to send this state change from another
    site: it needs the CSRF header, and an Origin (when there is one) naming this server's
    own origin (scheme, host and port, ``server.guard.origin``)."""
    return request.headers.get(CSRF_HEADER) == CSRF_VALUE and same_origin(
        request.headers.get("origin"), request.url.scheme, request.headers.get("host"))


def require_user(request: Request) -> int:
    """FastAPI dependency: the signed-in user's id; 401 without a session, 403 for a forged
    state change (missing CSRF header or foreign Origin)."""
    db: Database = request.app.state.db
    user_id = session_user(db, request.cookies.get(SESSION_COOKIE))
    if user_id is None:
        raise HTTPException(status_code=401, detail="sign in first")
    if request.method not in ("GET", "HEAD", "OPTIONS") and not genuine_state_change(request):
        raise HTTPException(status_code=403, detail="cross-site request refused")
    return user_id


def websocket_user(websocket: WebSocket) -> Optional[int]:
    db: Database = websocket.app.state.db
    if not same_origin(websocket.headers.get("origin"), websocket.url.scheme, websocket.headers.get("host")):
        return None
    return session_user(db, websocket.cookies.get(SESSION_COOKIE))
