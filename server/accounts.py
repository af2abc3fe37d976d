"""Rows of users, sessions and one-time sign-in tokens (the SQL behind ``server.auth``).

Tokens are stored only as their SHA-256 hex digests (``token_hash``), computed by the caller.
Times of sessions and tokens are seconds since the Unix epoch. A sign-in token carries the
boot id of the server start that issued it (``Services.boot_id``) and works only there.
"""
from __future__ import annotations

from typing import Optional

from sqlalchemy import delete, insert, select, update

from server.db import Database, utc_now_iso
from server.schema import login_tokens, sessions, users

DEFAULT_USER = "local"
"""The user the run command's one-time sign-in link signs in (made at the first start)."""


def user_id(db: Database, username: str) -> Optional[int]:
    """The id of user ``username``, or None."""
    found = db.scalar(select(users.c.id).where(users.c.username == username))
    return None if found is None else int(found)


def username(db: Database, user_id: int) -> Optional[str]:
    """The name of user ``user_id``, or None."""
    return db.scalar(select(users.c.username).where(users.c.id == user_id))


def insert_user(db: Database, name: str, password_hash: Optional[str] = None) -> int:
    """Add user ``name``; its id. Raises ``sqlalchemy.exc.IntegrityError`` if the name is taken."""
    with db.writing() as conn:
        result = conn.execute(insert(users).values(username=name, password_hash=password_hash,
                                                   created_at=utc_now_iso()))
        return int(result.inserted_primary_key[0])


def ensure_user(db: Database, name: str, password_hash: Optional[str] = None) -> int:
    """Id of user ``name``, created (without password unless given) if missing."""
    found = user_id(db, name)
    return found if found is not None else insert_user(db, name, password_hash)


def default_owner(db: Database) -> int:
    """Who owns a project nobody in particular imported (the seeded demo, a CLI import
    without ``--owner``): the first user, or the default user, made now if there is none."""
    first = db.scalar(select(users.c.id).order_by(users.c.id).limit(1))
    return int(first) if first is not None else ensure_user(db, DEFAULT_USER)


def credentials(db: Database, name: str) -> Optional[tuple[int, Optional[str]]]:
    """``(id, password hash or None)`` of user ``name``, or None if there is no such user."""
    row = db.one(select(users.c.id, users.c.password_hash).where(users.c.username == name))
    return None if row is None else (int(row["id"]), row["password_hash"])


def list_users(db: Database) -> list[tuple[str, str]]:
    """``(username, created_at)`` of every user, oldest first."""
    rows = db.all(select(users.c.username, users.c.created_at).order_by(users.c.id))
    return [(r["username"], r["created_at"]) for r in rows]


def insert_login_token(db: Database, token_hash: str, user_id: int, now: float, boot_id: str) -> None:
    """Record a one-time sign-in token issued at ``now`` by the server start ``boot_id``."""
    db.execute(insert(login_tokens).values(token_hash=token_hash, user_id=user_id, created_at=now,
                                           boot_id=boot_id))


def spend_login_token(db: Database, token_hash: str, boot_id: str, not_before: float) -> Optional[int]:
    """Mark the unused token used (one compare-and-set); its user's id, or None if it was
    unknown, used already, issued by another server start than ``boot_id`` or before
    ``not_before``."""
    with db.writing() as conn:
        row = conn.execute(
            update(login_tokens)
            .where(login_tokens.c.token_hash == token_hash, login_tokens.c.used.is_(False),
                   login_tokens.c.boot_id == boot_id, login_tokens.c.created_at >= not_before)
            .values(used=True)
            .returning(login_tokens.c.user_id)
        ).first()
    return None if row is None else int(row[0])


def insert_session(db: Database, token_hash: str, user_id: int, now: float, expires_at: float) -> None:
    db.execute(insert(sessions).values(token_hash=token_hash, user_id=user_id, created_at=now,
                                       expires_at=expires_at))


def delete_session(db: Database, token_hash: str) -> None:
    db.execute(delete(sessions).where(sessions.c.token_hash == token_hash))


def session_owner(db: Database, token_hash: str, now: float) -> Optional[int]:
    """The user of an unexpired session, or None."""
    found = db.scalar(select(sessions.c.user_id).where(sessions.c.token_hash == token_hash,
                                                       sessions.c.expires_at >= now))
    return None if found is None else int(found)
