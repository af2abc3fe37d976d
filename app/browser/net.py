"""The page's own JSON requests (projects, history, session), async and never blocking.

``request_json`` awaits ``window.fetch`` with ``AbortSignal.timeout`` (no JS proxy is
made, so nothing is left to release) and the CSRF header of the API. ``prefetched_json``
takes the answer of a request ``index.html`` started before Python was up.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import js  # type: ignore[import-not-found]

from app.browser.adapters import js_object
from app.browser.dom import is_missing

TIMEOUT_MS = 10_000


class Unreachable(Exception):
    """No HTTP answer: the server is down, the network is gone or the request timed out."""


async def request_json(method: str, path: str, body: Optional[Any] = None,
                       timeout_ms: int = TIMEOUT_MS) -> tuple[int, Any]:
    """``(status, parsed JSON body or None)`` of one request to the page's own server.
    Raises ``Unreachable`` when there is no answer within ``timeout_ms``."""
    headers = {"X-Requested-With": "cellhub", "Accept": "application/json"}
    init: dict[str, Any] = {"method": method, "headers": headers, "credentials": "same-origin",
                            "cache": "no-store"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        init["body"] = json.dumps(body)
    init_js = js_object(init)
    init_js.signal = js.AbortSignal.timeout(timeout_ms)
    try:
        response = await js.fetch(path, init_js)
        text = await response.text()
    except Exception as exc:  # noqa: BLE001 - TypeError (network), AbortError, TimeoutError
        raise Unreachable(f"{method} {path}: {exc}") from None
    return int(response.status), _parsed(str(text))


def _parsed(text: str) -> Any:
    """The JSON value of a response body, or None when it is empty or not JSON."""
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


async def prefetched_json(promise: Any) -> tuple[int, Any]:
    """``(status, parsed JSON body or None)`` from a JS promise of ``[status, text]`` (what
    ``index.html`` stores in ``window.cellhubBoot.project``); it resolves to null when the
    request got no answer, and then this raises ``Unreachable``."""
    try:
        result = await promise
    except Exception as exc:  # noqa: BLE001 - a rejected prefetch is no answer either
        raise Unreachable(f"prefetch: {exc}") from None
    if is_missing(result):
        raise Unreachable("prefetch: no answer")
    return int(result[0]), _parsed(str(result[1]))
