"""The one shape of a refused request's body (R8), built and read here by both sides.

A 4xx answer's body is ``{"detail": str}`` (one sentence) or, for bad input,
``{"detail": [{"field": str, "reason": str}, ...]}``: ``field`` is the dotted path of the
input (``pixel_size_um``, ``visualization.opacity``, ``start_token``; ``options`` for a
rule over several fields) and ``reason`` says what is wrong with it. The server builds
it with ``field_errors`` (FastAPI's and pydantic's validation errors through
``validation_errors``), the test fakes build it the same way, and the page reads either
form with ``error_text``.
"""
from __future__ import annotations

from typing import Any, Iterable, Protocol


class _HasErrors(Protocol):
    def errors(self) -> list[dict[str, Any]]: ...


def field_errors(problems: Iterable[tuple[str, str]]) -> dict[str, list[dict[str, str]]]:
    """The body ``{"detail": [{"field", "reason"}, ...]}`` of ``(field, reason)`` pairs."""
    return {"detail": [{"field": name, "reason": reason} for name, reason in problems]}


def validation_errors(exc: _HasErrors) -> dict[str, list[dict[str, str]]]:
    """The body for a ``pydantic.ValidationError`` (or FastAPI's ``RequestValidationError``):
    one item per error, the field path without FastAPI's leading ``body``."""
    problems = []
    for err in exc.errors():
        path = [str(part) for part in err.get("loc", ()) if part != "body"]
        problems.append((".".join(path) or "options", str(err.get("msg", "invalid"))))
    return field_errors(problems)


def error_text(body: Any, status: int) -> str:
    """One readable line from an error body: its sentence, or ``field: reason`` items
    joined by ``; ``; ``HTTP <status>`` when the body says nothing."""
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, str) and detail:
        return detail
    if isinstance(detail, list):
        parts = []
        for item in detail:
            if isinstance(item, dict):
                name, reason = str(item.get("field") or ""), str(item.get("reason") or "invalid")
                parts.append(f"{name}: {reason}" if name else reason)
        if parts:
            return "; ".join(parts)
    return f"HTTP {status}"
