"""Personal API tokens: the request and answer models of ``/api/tokens``, shared by the
server (validation) and the page's "API tokens" panel (which builds the request).

A token acts as its user for scripts (``Authorization: Bearer <token>``). It is shown once,
when it is made (``NewApiToken.token``); the server keeps only its SHA-256. Times are
ISO-8601 UTC strings; ``expires_at`` null means the token never expires.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Optional

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

NAME_MAX = 100
EXPIRY_DAYS: tuple[Optional[int], ...] = (30, 7, 90, 365, None)
"""The page's choices of lifetime, in days (None: never expires); the first is its default."""


class TokenRequest(BaseModel):
    """``POST /api/tokens``: a ``name`` saying what the token is for (1-100 characters after
    trimming) and an optional ``expires_at`` (a time with its zone, in the future)."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=NAME_MAX)
    expires_at: Optional[AwareDatetime] = None

    @field_validator("name", mode="before")
    @classmethod
    def _trimmed(cls, value: object) -> object:
        return value.strip() if isinstance(value, str) else value

    @field_validator("expires_at")
    @classmethod
    def _in_the_future(cls, value: Optional[datetime]) -> Optional[datetime]:
        if value is not None and value <= datetime.now(timezone.utc):
            raise ValueError("must be in the future")
        return value


class ApiToken(BaseModel):
    """One token as ``GET /api/tokens`` lists it: never its secret, only the first characters
    (``prefix``) that tell tokens apart. ``expired``: it is past ``expires_at`` (it then acts
    as nobody; revoke it to remove it from the list)."""

    id: int
    name: str
    prefix: str
    created_at: str
    expires_at: Optional[str] = None
    last_used_at: Optional[str] = None
    expired: bool = False


class NewApiToken(ApiToken):
    """The answer of ``POST /api/tokens`` (201): the token with its secret, shown this once."""

    token: str


def expiry_after(days: Optional[int], now: datetime) -> Optional[str]:
    """The ``expires_at`` of a token made at ``now`` that lasts ``days`` (None: never), as
    ISO-8601 UTC."""
    if days is None:
        return None
    return (now.astimezone(timezone.utc) + timedelta(days=days)).isoformat(timespec="seconds")
