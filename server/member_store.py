"""Rows of project members: who besides the owner may see a project, and with which role
(``viewer`` or ``editor``, ``server.schema.ROLES``)."""
from __future__ import annotations

from typing import Optional

from sqlalchemy import delete, insert, select, update

from server.db import Database, utc_now_iso
from server.schema import project_members, projects, users


def members(db: Database, project_id: int) -> list[dict[str, str]]:
    """``[{username, role}]``: the owner first (role ``"owner"``), then the members by name."""
    owner = db.one(select(users.c.username).select_from(projects.join(users, users.c.id == projects.c.owner_id))
                   .where(projects.c.id == project_id))
    rows = db.all(select(users.c.username, project_members.c.role)
                  .select_from(project_members.join(users, users.c.id == project_members.c.user_id))
                  .where(project_members.c.project_id == project_id).order_by(users.c.username))
    listed = [{"username": owner["username"], "role": "owner"}] if owner is not None else []
    return listed + [{"username": r["username"], "role": r["role"]} for r in rows]


def role_of(db: Database, project_id: int, user_id: int) -> Optional[str]:
    """The member's role, or None if ``user_id`` is not a member."""
    return db.scalar(select(project_members.c.role).where(project_members.c.project_id == project_id,
                                                          project_members.c.user_id == user_id))


def set_member(db: Database, project_id: int, user_id: int, role: str) -> str:
    """Make ``user_id`` a member with ``role``: ``"added"``, ``"changed"`` or ``"unchanged"``."""
    with db.writing() as conn:
        current = conn.execute(select(project_members.c.role).where(
            project_members.c.project_id == project_id, project_members.c.user_id == user_id)).scalar()
        if current == role:
            return "unchanged"
        if current is None:
            conn.execute(insert(project_members).values(project_id=project_id, user_id=user_id, role=role,
                                                        added_at=utc_now_iso()))
            return "added"
        conn.execute(update(project_members).where(project_members.c.project_id == project_id,
                                                   project_members.c.user_id == user_id).values(role=role))
        return "changed"


def remove_member(db: Database, project_id: int, user_id: int) -> bool:
    """Remove the membership; False if there was none."""
    return db.execute(delete(project_members).where(project_members.c.project_id == project_id,
                                                    project_members.c.user_id == user_id)) == 1
