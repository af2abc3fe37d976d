"""ASGI middleware: request bodies are bounded before anything parses them.

Every request body except the streamed uploads (``STREAMED``, which bound themselves as they
arrive and only after the session is checked) is read here first, at most
``MAX_JSON_BYTES`` (1 MiB; export options are a few hundred bytes, a sign-in less): a
declared ``Content-Length`` over it is refused before a byte is read, a body that grows past
it stops being read there. A JSON body is then parsed by :func:`server.guard.json_bounds.load_json`
so that non-finite numbers, numbers beyond float range, integers of more than 20 digits
and nesting deeper than 64 are a 422 naming the field before FastAPI parses it. The body
is handed on to the app unchanged.

Answers (the project's error shape): 413 ``{"detail": [{"field": "body", "reason"}]}``,
422 ``{"detail": [{"field", "reason"}, ...]}``.
"""
from __future__ import annotations

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from server.guard.json_bounds import JsonBoundsError, load_json

MAX_JSON_BYTES = 1024 * 1024
STREAMED = frozenset({"/api/projects/import"})


def _too_large(limit: int) -> JSONResponse:
    return JSONResponse(status_code=413, content={"detail": [
        {"field": "body", "reason": f"the request body is larger than {limit} bytes ({limit // 1024} KiB)"}]})


def _is_json(scope: Scope) -> bool:
    for name, value in scope.get("headers", []):
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            return media == b"application/json" or media.endswith(b"+json")
    return False


class BoundedBodies:
    """See the module docstring. ``limit``: the largest body read, in bytes."""

    def __init__(self, app: ASGIApp, limit: int = MAX_JSON_BYTES) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in STREAMED:
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            return await _too_large(self.limit)(scope, receive, send)
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                return await _too_large(self.limit)(scope, receive, send)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body and _is_json(scope):
            try:
                load_json(body, "body")
            except JsonBoundsError as exc:
                detail = [{"field": field, "reason": reason} for field, reason in exc.problems]
                return await JSONResponse(status_code=422, content={"detail": detail})(scope, receive, send)
            except (ValueError, UnicodeDecodeError):
                pass  # not JSON at all: FastAPI's own 422 says where

        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

