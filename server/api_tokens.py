"""Personal API tokens: made, listed, revoked and checked (the SQL behind ``/api/tokens`` and
behind ``Authorization: Bearer`` in ``server.auth``).

A secret is ``chub_`` and 43 URL-safe characters (256 random bits), stored only as its SHA-256
(``token_hash``, as sessions are: the secret is random, so a fast hash suffices), with its
first 12 characters (``prefix``) to tell tokens apart in lists. Every request checks the row,
so a revoked or expired token is refused from the next request on. ``last_used_at`` is
written at most once a minute per token (a script polling twice a second must not turn every
read into a write).
"""
from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Mapping, Optional

from sqlalchemy import func, insert, select, update

from app.api_tokens import ApiToken, NewApiToken
from server.db import Database
from server.schema import api_tokens

SECRET_PREFIX = "chub_"
SHOWN_PREFIX = 12
MAX_ACTIVE = 50
"""A user's tokens that are neither revoked nor expired, at most (bounded rows per user)."""
LAST_USED_EVERY_S = 60.0


class TokenRefused(Exception):
    """The bearer secret acts as nobody; ``str(exc)`` says why, for the 401's detail."""


class TooManyTokens(Exception):
    """The user already has ``MAX_ACTIVE`` usable tokens."""


@dataclass(frozen=True)
class TokenUse:
    """Who a valid secret acts as: its user, its row id and its expiry (seconds, or None)."""

    user_id: int
    token_id: int
    expires_at: Optional[float]


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def iso(seconds: Optional[float]) -> Optional[str]:
    """Seconds since the epoch as the API's ISO-8601 UTC text with milliseconds."""
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, timezone.utc).isoformat(timespec="milliseconds")


def _listed(row: Mapping, now: float) -> ApiToken:
    expires = row["expires_at"]
    return ApiToken(id=int(row["id"]), name=row["name"], prefix=row["prefix"], created_at=iso(row["created_at"]),
                    expires_at=iso(expires), last_used_at=iso(row["last_used_at"]),
                    expired=expires is not None and expires <= now)


def _usable(now: float):
    return (api_tokens.c.revoked_at.is_(None),
            (api_tokens.c.expires_at.is_(None)) | (api_tokens.c.expires_at > now))


def create(db: Database, user_id: int, name: str, expires_at: Optional[float], now: float) -> NewApiToken:
    """Make a token for ``user_id``; the answer holds its secret (the only time it is seen).
    Raises ``TooManyTokens`` past ``MAX_ACTIVE`` usable tokens."""
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    with db.writing() as conn:
        count = conn.execute(select(func.count()).select_from(api_tokens)
                             .where(api_tokens.c.user_id == user_id, *_usable(now))).scalar_one()
        if count >= MAX_ACTIVE:
            raise TooManyTokens(f"at most {MAX_ACTIVE} API tokens; revoke one first")
        row = conn.execute(insert(api_tokens).values(
            user_id=user_id, name=name, token_hash=digest(secret), prefix=secret[:SHOWN_PREFIX],
            created_at=now, expires_at=expires_at,
        ).returning(api_tokens)).mappings().one()
    return NewApiToken(**_listed(row, now).model_dump(), token=secret)


def list_for(db: Database, user_id: int, now: float) -> list[ApiToken]:
    """The user's tokens that are not revoked (expired ones too, marked), newest first."""
    rows = db.all(select(api_tokens).where(api_tokens.c.user_id == user_id, api_tokens.c.revoked_at.is_(None))
                  .order_by(api_tokens.c.created_at.desc(), api_tokens.c.id.desc()))
    return [_listed(row, now) for row in rows]


def revoke(db: Database, user_id: int, token_id: int, now: float) -> bool:
    """Revoke the user's token ``token_id``; False if it is not theirs or already revoked."""
    return db.execute(update(api_tokens).where(api_tokens.c.id == token_id, api_tokens.c.user_id == user_id,
                                               api_tokens.c.revoked_at.is_(None)).values(revoked_at=now)) == 1


def check(db: Database, secret: str, now: float) -> TokenUse:
    """Who ``secret`` acts as; ``TokenRefused`` (unknown, revoked or expired) otherwise."""
    row = db.one(select(api_tokens).where(api_tokens.c.token_hash == digest(secret)))
    reason = refusal(row, now)
    if reason is not None:
        raise TokenRefused(reason)
    if row["last_used_at"] is None or now - row["last_used_at"] >= LAST_USED_EVERY_S:
        db.execute(update(api_tokens).where(api_tokens.c.id == row["id"]).values(last_used_at=now))
    return TokenUse(int(row["user_id"]), int(row["id"]), row["expires_at"])


def refusal(row: Optional[Mapping], now: float) -> Optional[str]:
    """Why a token row acts as nobody now (a sentence), or None when it is usable."""
    if row is None:
        return "unknown API token"
    if row["revoked_at"] is not None:
        return "this API token was revoked"
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return "this API token has expired"
    return None


def why_unusable(db: Database, token_id: int, now: float) -> Optional[str]:
    """None while token ``token_id`` is usable, else why not (an open WebSocket re-checks)."""
    return refusal(db.one(select(api_tokens).where(api_tokens.c.id == token_id)), now)
