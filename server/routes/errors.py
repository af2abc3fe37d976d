"""Error answers shared by the routes: 422 ``{"detail": [{"field", "reason"}]}`` (R8)."""
from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError


def validation_detail(exc: ValidationError | RequestValidationError) -> list[dict]:
    """``[{"field", "reason"}]`` of a pydantic or request validation error."""
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        # A rule over several fields (e.g. "nothing to export") names the options as a whole.
        out.append({"field": ".".join(loc) or "options", "reason": err.get("msg", "invalid")})
    return out


def unprocessable(field: str, reason: str) -> JSONResponse:
    """422 naming one ``field`` and its ``reason``."""
    return JSONResponse(status_code=422, content={"detail": [{"field": field, "reason": reason}]})


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
