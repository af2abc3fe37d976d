"""The API's OpenAPI schema for signed-in users only; no bundled docs pages.

FastAPI's ``/docs`` and ``/redoc`` load Swagger UI and ReDoc from a CDN (broken offline, and
a third party's script on the hub's origin), so they are off. ``GET /openapi.json`` needs a
session like every other API route: the schema is for the hub's users and their scripts
(any OpenAPI viewer reads it), not for whoever can reach the port.
"""
from __future__ import annotations

from fastapi import Depends, FastAPI

from server import auth


def add_private_schema(app: FastAPI) -> None:
    """Serve ``app.openapi()`` at ``/openapi.json`` to signed-in users (the app must be
    built with ``openapi_url=None, docs_url=None, redoc_url=None``)."""

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema(user_id: int = Depends(auth.require_user)) -> dict:
        return app.openapi()
