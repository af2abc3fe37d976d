"""Users, sessions and the one-time login token (like Jupyter's).

Passwords are hashed with argon2-cffi (at most ``MAX_PASSWORD_CHARS``); an unknown name
costs the same one check against a dummy hash. Sessions are random tokens kept as SHA-256
hashes; the cookie is HttpOnly and SameSite=Strict (and Secure over https or with
``--secure-cookies``). A state change needs the header ``X-Requested-With: cellhub``
(which a cross-site form cannot send) and, when the browser sends an Origin, the page's
own origin: scheme, host and port (``server.guard.origin``). One-time login links work
``--login-link-minutes`` (15) and only on the start of the server that issued them
(its boot id). Throttling: ``server.guard.signin``.
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

from server import accounts
from server import bearer
from server.db import Database
from server.guard.origin import same_origin

SESSION_COOKIE = "cellhub_session"
SESSION_SECONDS = 14 * 24 * 3600
CSRF_HEADER = "x-requested-with"
CSRF_VALUE = "cellhub"
DEFAULT_USER = accounts.DEFAULT_USER
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
    if accounts.user_id(db, username) is not None:
        raise ValueError(f"user {username!r} already exists")
    return accounts.insert_user(db, username, hash_password(password))


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
    found = accounts.credentials(db, username)
    if found is None or not found[1]:
        verify_password(_dummy_hash(), password)
        return None
    return found[0] if verify_password(found[1], password) else None


def new_login_token(db: Database, user_id: int, boot_id: str) -> str:
    """A one-time sign-in token for ``user_id``, good only on the server start ``boot_id``
    (``Services.boot_id``)."""
    token = secrets.token_urlsafe(24)
    accounts.insert_login_token(db, _h(token), user_id, time.time(), boot_id)
    return token


def use_login_token(db: Database, token: str, boot_id: str,
                    max_age_seconds: float = LOGIN_LINK_MINUTES * 60) -> Optional[int]:
    """Spend a one-time login token; the user's id, or None if it is unknown or used, was
    issued by another start of the server than ``boot_id`` (a link printed before a restart
    is dead after it) or more than ``max_age_seconds`` ago."""
    return accounts.spend_login_token(db, _h(token), boot_id, time.time() - max_age_seconds)


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


def genuine_state_change(request: Request) -> bool:
    """True unless a browser could have been made to send this state change from another
    site: it needs the CSRF header, and an Origin (when there is one) naming this server's
    own origin (scheme, host and port, ``server.guard.origin``)."""
    return request.headers.get(CSRF_HEADER) == CSRF_VALUE and same_origin(
        request.headers.get("origin"), request.url.scheme, request.headers.get("host"))


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
    if request.method not in ("GET", "HEAD", "OPTIONS") and not genuine_state_change(request):
        raise HTTPException(status_code=403, detail="cross-site request refused")
    return user_id


def websocket_user(websocket: WebSocket) -> Optional[int]:
    db: Database = websocket.app.state.db
    if not same_origin(websocket.headers.get("origin"), websocket.url.scheme, websocket.headers.get("host")):
        return None
    return session_user(db, websocket.cookies.get(SESSION_COOKIE))
