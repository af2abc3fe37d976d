"""The page's one HTTP client: ``request_json``, async and never blocking.

It awaits ``window.fetch`` with the API's CSRF header, JSON bodies, ``cache: no-store`` and
a timeout (``AbortSignal.timeout``, joined with the caller's own ``abort`` signal when one
is given: ``AbortSignal.any``), so no JS proxy is made and nothing is left to release.
The hook's ``Http`` port (``app.browser.adapters.FetchHttp``) and the page's own requests
(projects, history, session) both go through it. ``prefetched_json`` takes the answer of
a request ``index.html`` started before Python was up.
"""
from __future__ import annotations

import json
from typing import Any, Optional

import js  # type: ignore[import-not-found]
from pyodide.ffi import to_js  # type: ignore[import-not-found]

from app.browser.interop import is_missing, js_object

TIMEOUT_MS = 10_000


class Unreachable(Exception):
    """No HTTP answer: the server is down, the network is gone, the request timed out or
    was aborted."""


async def request_json(method: str, path: str, body: Optional[Any] = None, timeout_ms: int = TIMEOUT_MS,
                       abort: Any = None) -> tuple[int, Any]:
    """``(status, parsed JSON body or None)`` of one request to the page's own server.
    Raises ``Unreachable`` when there is no answer within ``timeout_ms`` or ``abort`` (an
    ``AbortSignal``) fires first."""
    headers = {"X-Requested-With": "cellhub", "Accept": "application/json"}
    init: dict[str, Any] = {"method": method, "headers": headers, "credentials": "same-origin",
                            "cache": "no-store"}
    if body is not None:
        headers["Content-Type"] = "application/json"
        init["body"] = json.dumps(body)
    init_js = js_object(init)
    timeout = js.AbortSignal.timeout(timeout_ms)
    init_js.signal = timeout if abort is None else js.AbortSignal.any(to_js([abort, timeout]))
    try:
        response = await js.fetch(path, init_js)
        text = await response.text()
    except Exception as exc:  # noqa: BLE001 - TypeError (network), AbortError, TimeoutError
        raise Unreachable(f"{method} {path}: no answer ({exc})") from None
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
