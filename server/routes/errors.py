"""Error answers shared by the routes: 422 ``{"detail": [{"field", "reason"}]}`` (R8)."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from app.errors import field_errors, validation_errors


def validation_detail(exc: ValidationError | RequestValidationError) -> list[dict]:
    """``[{"field", "reason"}]`` of a pydantic or request validation error: R8's one error
    shape, shared with the page and the test fakes (``app.errors``)."""
    return validation_errors(exc)["detail"]


def unprocessable(field: str, reason: str) -> JSONResponse:
    """422 naming one ``field`` and its ``reason``."""
    return JSONResponse(status_code=422, content=field_errors([(field, reason)]))


def first_few(values: list, shown: int = 10) -> str:
    """``values`` as a list, cut after ``shown`` items with "... and N more" (an error answer
    must not echo a huge request back)."""
    if len(values) <= shown:
        return str(values)
    return f"{str(values[:shown])[:-1]}, ...] and {len(values) - shown} more"


def add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def _on_validation(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": validation_detail(exc)})
