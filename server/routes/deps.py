"""What routes share: the service's parts as a FastAPI dependency, the id types of URLs, and
the visibility rule (R9) every route that names a project goes through."""
from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException
from fastapi import Path as PathParam
from sqlalchemy.engine import RowMapping
from starlette.requests import HTTPConnection

from server import project_store
from server.services import Services

# A project or image id in a URL: a 64-bit database id, so a bigger number is a 422 naming
# the parameter instead of an OverflowError (500) from the database driver.
RowId = Annotated[int, PathParam(ge=-(2**63), le=2**63 - 1)]


def services(connection: HTTPConnection) -> Services:
    """FastAPI dependency (HTTP and WebSocket routes): the app's ``Services``."""
    return connection.app.state.services


MANAGERS = ("owner", "editor")
"""R9: who may rename, share and delete a project."""


def visible_project(svc: Services, user_id: int, project_id: int) -> tuple[RowMapping, str]:
    """``(project row, the user's access)``; 404 when there is no such project or the user
    may not see it: the same answer, so an id tells nothing about projects one cannot see (R9)."""
    row, access = project_store.project_access(svc.db, user_id, project_id)
    if row is None or access is None:
        raise HTTPException(404, f"no project {project_id}")
    return row, access


def managed_project(svc: Services, user_id: int, project_id: int) -> RowMapping:
    """The project row if the user may change it (owner or editor); 404 as ``visible_project``,
    403 for a viewer or a reader of a public project."""
    row, access = visible_project(svc, user_id, project_id)
    if access not in MANAGERS:
        raise HTTPException(403, "only the owner and editors of this project can change or share it")
    return row
