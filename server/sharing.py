"""Changes of who may see a project (R9) and what follows from them.

Whoever loses sight of a project (a member removed, a project made private, a project
deleted) loses its exports of it at once: the active ones and the completed ones not yet
downloaded are cancelled by the R2 path (one compare-and-set each, the worker stops at its
next checkpoint, the tabs hear ``export.cancelled`` and download nothing), and every archive
of theirs of that project is deleted (those routes answer 404 anyway). Their open pages get
``{"type": "project.gone", "project_id"}`` over the WebSocket and show the project as gone.

``AccessChanges`` works in the server (cancels through the ``Runner``, tells pages through
the ``Hub``) and in the CLI (cancels through the ``JobStore``: a running server's worker sees
the cancelled row at its next progress report; no page is told).
"""
from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Optional

from server import accounts, member_store, project_store
from server.db import Database
from server.jobs import JobStore


class ShareError(ValueError):
    """A share request that cannot be done: ``field`` (``username``/``role``) and ``reason``."""

    def __init__(self, field_name: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field_name
        self.reason = reason


@dataclass
class AccessChanges:
    db: Database
    store: JobStore
    data_dir: Path
    files_root: Path
    cancel: Callable[[str], Any]
    """Cancels one job by R2 (``Runner.cancel`` in the server, ``JobStore.cancel`` elsewhere)."""
    publish: Callable[[int, dict], None] = lambda _user, _event: None
    connected: Callable[[], Iterable[int]] = field(default=lambda: ())
    """The users with an open WebSocket (candidates for ``project.gone``)."""

    # --- members ------------------------------------------------------------------
    def share(self, project_id: int, username: str, role: str) -> str:
        """Give ``username`` the ``role`` on the project: ``"added"``, ``"changed"`` or
        ``"unchanged"``. Raises ``ShareError`` for an unknown user or role, or the owner."""
        if role not in ("viewer", "editor"):
            raise ShareError("role", "must be 'viewer' or 'editor'")
        user_id = accounts.user_id(self.db, username)
        if user_id is None:
            raise ShareError("username", f"there is no user named {username!r}")
        row, _ = project_store.project_access(self.db, user_id, project_id)
        if row is not None and row["owner_id"] == user_id:
            raise ShareError("username", f"{username} owns this project")
        return member_store.set_member(self.db, project_id, user_id, role)

    def unshare(self, project_id: int, user_id: int) -> bool:
        """Remove the member; if that leaves them without sight of the project (it is not
        public), their exports of it go (see the module docstring). False if not a member."""
        if not member_store.remove_member(self.db, project_id, user_id):
            return False
        self.withdraw(project_id, [user_id])
        return True

    # --- the project ----------------------------------------------------------------
    def update(self, project_id: int, changes: dict[str, Any]) -> None:
        """Rename, describe, publish or unpublish; unpublishing withdraws the project from
        everyone who saw it only because it was public."""
        project_store.update_project(self.db, project_id, changes)
        if changes.get("public") is False:
            users = {row["user_id"] for row in self.store.of_project(project_id)} | set(self.connected())
            self.withdraw(project_id, users)

    def delete(self, project_id: int) -> None:
        """Delete the project: its exports are cancelled first (R2), then its rows, images,
        thumbnails and archives go; every page showing it is told."""
        watchers = [user for user in set(self.connected())
                    if project_store.project_access(self.db, user, project_id)[1] is not None]
        jobs = self.store.of_project(project_id)
        for job in jobs:
            self.cancel(job["id"])
        removed = project_store.delete_project(self.db, project_id)
        for job in jobs:
            self.store.remove_files(job["id"])
        for folder in {Path(image["rel_path"]).parts[0] for image in removed}:
            shutil.rmtree(self.files_root / folder, ignore_errors=True)
        for image in removed:
            (self.data_dir / "thumbnails" / f"{image['id']}.png").unlink(missing_ok=True)
        self._tell_gone(project_id, watchers)

    # --- losing sight -----------------------------------------------------------------
    def withdraw(self, project_id: int, user_ids: Iterable[int]) -> list[int]:
        """For each of ``user_ids`` who can no longer see the project: cancel their exports
        of it and delete their archives; tell their pages. Returns those users."""
        lost = [user for user in set(user_ids)
                if project_store.project_access(self.db, user, project_id)[1] is None]
        if not lost:
            return []
        for job in self.store.of_project(project_id):
            if job["user_id"] in lost:
                self.cancel(job["id"])  # R2: active, or completed and not downloaded
                self.store.remove_files(job["id"])  # a downloaded archive too
        self._tell_gone(project_id, lost)
        return lost

    def _tell_gone(self, project_id: int, user_ids: Iterable[int]) -> None:
        for user in user_ids:
            self.publish(user, {"type": "project.gone", "project_id": project_id, "ts": time.time() * 1000})


def member_id(db: Database, project_id: int, username: str) -> Optional[int]:
    """The user id of ``username`` if they are a member of the project, else None."""
    user_id = accounts.user_id(db, username)
    if user_id is None or member_store.role_of(db, project_id, user_id) is None:
        return None
    return user_id
