"""Fair use of one server by many users (R10): limits checked when an export starts.

- at most ``max_active`` queued or running exports per user, over all projects: one more is
  refused with 429;
- at most ``archive_quota_bytes`` of kept archives per user (the sizes of its completed
  exports whose archives are still there): a start while the user's archives already take
  that much is refused with 507 (the new archive's size is not known before it is written,
  so the start that reaches the quota is the last one let through).

``check`` runs inside the start's write transaction, after the owner's row was locked
(``lock_user``), so two starts at once cannot both pass a limit.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from sqlalchemy import Connection, func, select

from server.schema import ACTIVE_STATUSES, jobs, users

MIB = 1024 * 1024


@dataclass(frozen=True)
class FairUse:
    """The limits; None: no limit."""

    max_active: Optional[int] = None
    archive_quota_bytes: Optional[int] = None


class StartRefused(Exception):
    """A start refused by a limit: HTTP ``status`` (429 or 507) and a ``detail`` for people."""

    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def lock_user(conn: Connection, user_id: int) -> None:
    """Serialise the user's starts: ``SELECT ... FOR UPDATE`` of its row (PostgreSQL; SQLite's
    ``BEGIN IMMEDIATE`` already lets one writer at a time in)."""
    conn.execute(select(users.c.id).where(users.c.id == user_id).with_for_update())


def active_count(conn: Connection, user_id: int) -> int:
    return int(conn.execute(select(func.count()).select_from(jobs)
                            .where(jobs.c.user_id == user_id, jobs.c.status.in_(ACTIVE_STATUSES))).scalar())


def kept_bytes(conn: Connection, user_id: int) -> int:
    """The sizes of the user's completed exports (their archives are kept until they expire
    or are deleted)."""
    return int(conn.execute(select(func.coalesce(func.sum(jobs.c.size_bytes), 0))
                            .where(jobs.c.user_id == user_id, jobs.c.status == "completed")).scalar())


def check(conn: Connection, user_id: int, limits: FairUse) -> None:
    """Raise ``StartRefused`` if a new export of ``user_id`` would break a limit."""
    if limits.max_active is not None:
        active = active_count(conn, user_id)
        if active >= limits.max_active:
            raise StartRefused(429, (
                f"You already have {active} exports queued or running; the limit is {limits.max_active} per user. "
                "Start this one when one of them has finished, or cancel one."))
    if limits.archive_quota_bytes is not None:
        used = kept_bytes(conn, user_id)
        if used >= limits.archive_quota_bytes:
            raise StartRefused(507, (
                f"Your finished exports keep {format_mib(used)} of archives on the server; your quota is "
                f"{format_mib(limits.archive_quota_bytes)}. Delete exports you no longer need under "
                "\"Recent exports\" (or wait until they expire) to free space."))


def format_mib(size: int) -> str:
    return f"{size / MIB:.1f} MiB"
