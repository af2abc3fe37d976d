"""R9 across replicas: who loses sight of a project hears it on whichever replica their page
is connected to.

``AccessChanges`` (``server.sharing``) cancels the exports of whoever loses sight of a project
through the cluster's cancel (one transaction: the CAS, the ticket's abort, the event) and
tells their pages ``project.gone``. A replica only knows its own sockets, so here:

- a notice to one user (a member removed) is a NOTIFY like a job event: every replica gives
  it to that user's sockets;
- a notice to everyone who may have been looking (a project made private, a project deleted)
  is a NOTIFY of the project with its audience: the project's owner and members for a private
  project deleted, or "whoever cannot see it now" when it was public; each replica tells its
  own connected users of that audience (``GoneNotices.deliver``), after the export.cancelled
  events of their own jobs (commit order).

Nobody hears of a project they could never see: a private project's audience is its owner
and members, and a public project was visible to every signed-in user.
"""
from __future__ import annotations

import json
import time
from typing import Optional

from sqlalchemy import select

from server import project_store
from server.cluster import notify
from server.schema import project_members, projects
from server.sharing import AccessChanges

GONE = "project.gone"


def gone_event(project_id: int) -> dict:
    return {"type": GONE, "project_id": project_id, "ts": time.time() * 1000}


def _send(db, payload: str) -> None:
    with db.writing() as conn:
        notify.notify(conn, payload)


def tell_user(db, user_id: int, event: dict) -> None:
    """A notice to one user's pages, on every replica."""
    _send(db, notify.encode(user_id, event))


def tell_audience(db, project_id: int, audience: Optional[list[int]]) -> None:
    """``project.gone`` to ``audience`` (user ids), or with None to whoever cannot see the
    project now, on every replica."""
    _send(db, json.dumps({"gone": project_id, "to": audience}, separators=(",", ":")))


def audience_of(db, project_id: int) -> Optional[list[int]]:
    """Who could see the project: None if it is public (every signed-in user), else its owner
    and members."""
    row = db.one(select(projects.c.owner_id, projects.c.public).where(projects.c.id == project_id))
    if row is None or row["public"]:
        return None
    members = db.all(select(project_members.c.user_id).where(project_members.c.project_id == project_id))
    return [row["owner_id"], *(m["user_id"] for m in members)]


class ClusterAccessChanges(AccessChanges):
    """``AccessChanges`` whose notices reach every replica (see the module)."""

    def update(self, project_id: int, changes: dict) -> None:
        super().update(project_id, changes)
        if changes.get("public") is False:
            tell_audience(self.db, project_id, None)

    def delete(self, project_id: int) -> None:
        audience = audience_of(self.db, project_id)
        super().delete(project_id)
        tell_audience(self.db, project_id, audience)


class GoneNotices:
    """A replica's side of ``tell_audience``: its own connected users of the audience."""

    def __init__(self, db, hub) -> None:
        self.db = db
        self.hub = hub

    @staticmethod
    def parse(payload: str) -> Optional[tuple[int, Optional[list[int]]]]:
        """``(project id, audience)`` of an audience notice, None for any other payload."""
        if not payload.startswith('{"gone"'):
            return None
        body = json.loads(payload)
        return int(body["gone"]), body["to"]

    def deliver(self, project_id: int, audience: Optional[list[int]]) -> None:
        """Runs off the event loop (it reads the database); publishes through the hub."""
        for user_id in list(self.hub.connected_users()):
            if audience is not None and user_id not in audience:
                continue
            if audience is None and project_store.project_access(self.db, user_id, project_id)[1] is not None:
                continue  # still sees it (owner, member)
            self.hub.publish(user_id, gone_event(project_id))
