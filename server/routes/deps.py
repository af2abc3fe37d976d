"""What routes share: the service's parts as a FastAPI dependency, the id types of URLs."""
from __future__ import annotations

from typing import Annotated

from fastapi import Path as PathParam
from starlette.requests import HTTPConnection

from server.services import Services

# A project or image id in a URL: a 64-bit database id, so a bigger number is a 422 naming
# the parameter instead of an OverflowError (500) from the database driver.
RowId = Annotated[int, PathParam(ge=-(2**63), le=2**63 - 1)]


def services(connection: HTTPConnection) -> Services:
    """FastAPI dependency (HTTP and WebSocket routes): the app's ``Services``."""
    return connection.app.state.services
