"""HTTP to the hub with ``requests``: the bearer token, JSON, errors as exceptions, and
patience with a flaky network.

Every request the client makes may be repeated safely (reads; a start that carries its
start token; a cancel, which R2 makes idempotent), so a request that gets no answer, or a
502/503/504, is sent again after 0.5, 1, 2, 4 ... 15 s until ``retry_for`` seconds have
passed since the first try; then ``Unreachable`` (or the last ``ServerError``).
"""
from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TypeVar

import requests

from cellhub_client import platform
from cellhub_client.errors import ServerError, Unreachable, for_answer

RETRIED_STATUSES = frozenset({502, 503, 504})
BACKOFF_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)
T = TypeVar("T")


def backoff(attempt: int) -> float:
    """Seconds to wait before try ``attempt + 1`` (0-based ``attempt``)."""
    return BACKOFF_S[min(attempt, len(BACKOFF_S) - 1)]


class Transport:
    """Requests to one hub (``base_url``) as the user of ``token``."""

    def __init__(self, base_url: str, token: Optional[str], *, timeout: float = 30.0, retry_for: float = 60.0,
                 session: Optional[requests.Session] = None, user_agent: str = "cellhub-client") -> None:
        platform.prepare()
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.retry_for = retry_for
        self.session = session or requests.Session()
        self.session.headers.update({"Accept": "application/json", "User-Agent": user_agent})
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def json(self, method: str, path: str, body: Any = None, ok: tuple[int, ...] = (200,)) -> Any:
        """The parsed JSON answer of a request whose status is in ``ok``; raises the
        ``CellhubError`` of any other answer."""
        response = self.send(method, path, body)
        parsed = _parsed(response)
        if response.status_code not in ok:
            raise for_answer(response.status_code, parsed)
        return parsed

    def send(self, method: str, path: str, body: Any = None) -> requests.Response:
        """One answer (any status but 502/503/504), retrying while there is none."""
        def once() -> requests.Response:
            response = self.session.request(method, self.url(path), json=body, timeout=self.timeout)
            if response.status_code in RETRIED_STATUSES:
                raise for_answer(response.status_code, _parsed(response))
            return response

        return retrying(once, f"{method} {path}", self.retry_for)

    @contextmanager
    def stream(self, path: str, headers: dict[str, str]) -> Iterator[requests.Response]:
        """A streamed GET (no retry: the caller resumes), closed when the block ends (read whole
        first where the platform cannot stream: ``platform.streams``). In Pyodide, where
        pyodide-http's timeout bounds the whole transfer instead of each read, it has none."""
        timeout = None if platform.IN_PYODIDE else self.timeout
        response = self.session.get(self.url(path), headers=headers, stream=platform.streams(), timeout=timeout)
        try:
            yield response
        finally:
            response.close()


def retrying(call: Callable[[], T], what: str, retry_for: float) -> T:
    """``call()``'s result, calling it again after a transport error or a ``ServerError``
    (with ``backoff``) until ``retry_for`` seconds have passed; then ``Unreachable`` (or the
    last ``ServerError``)."""
    deadline = time.monotonic() + retry_for
    attempt = 0
    while True:
        try:
            return call()
        except (*platform.TRANSPORT_ERRORS, ServerError) as exc:
            last: BaseException = exc
        wait = backoff(attempt)
        if time.monotonic() + wait > deadline:
            if isinstance(last, ServerError):
                raise last
            raise Unreachable(f"the hub did not answer {what}: {last}") from None
        platform.sleep(wait)
        attempt += 1


def _parsed(response: requests.Response) -> Any:
    try:
        return response.json() if response.content else None
    except ValueError:
        return None
