"""R6 across replicas: every change of a job's ``seq`` is announced with PostgreSQL's
``NOTIFY`` inside the transaction that made it, so it is delivered when (and only if) that
transaction commits, in commit order; each web replica listens (``server.cluster.listener``)
and feeds its WebSocket hub.

- One channel, ``cellhub_events``; the payload is ``{"u": owner's user id, "e": the event}``
  as compact JSON, at most ``MAX_PAYLOAD_BYTES`` (NOTIFY refuses more than 8000 bytes): a
  longer event message is cut, with an ellipsis, to fit.
- Progress is throttled per job (``ProgressThrottle``): at most one progress notification a
  job per ``PROGRESS_NOTIFY_INTERVAL_S``; a change of status is always announced. Clients drop
  nothing they need: they keep the newest seq they saw, and the next event carries it.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Any, Mapping, Optional

from sqlalchemy import func, select

CHANNEL = "cellhub_events"
MAX_PAYLOAD_BYTES = 7900
PROGRESS_NOTIFY_INTERVAL_S = 0.25


def encode(user_id: int, event: Mapping[str, Any]) -> str:
    """The payload of one event: compact JSON under ``MAX_PAYLOAD_BYTES`` (the message is
    shortened if need be; the other fields are short by construction)."""
    body = {"u": user_id, "e": dict(event)}
    text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    excess = len(text.encode()) - MAX_PAYLOAD_BYTES
    if excess > 0:
        message = str(body["e"].get("message", ""))
        keep = max(0, len(message.encode()) - excess - 8)
        body["e"]["message"] = message.encode()[:keep].decode(errors="ignore") + "…"
        text = json.dumps(body, separators=(",", ":"), ensure_ascii=False)
    if len(text.encode()) > MAX_PAYLOAD_BYTES:
        raise ValueError(f"an event does not fit a NOTIFY payload even without its message: {len(text)} bytes")
    return text


def decode(payload: str) -> tuple[int, dict]:
    """``(user_id, event)`` of a payload ``encode`` made."""
    body = json.loads(payload)
    return int(body["u"]), body["e"]


def notify(conn, payload: str) -> None:
    """``pg_notify`` on ``conn``'s open transaction: delivered at its commit."""
    conn.execute(select(func.pg_notify(CHANNEL, payload)))


class ProgressThrottle:
    """Per job: whether a change deserves a notification now. A status different from the
    last one announced for the job always does; the same status (progress) at most once per
    ``interval`` seconds. Thread-safe; forgets a job once it reaches a terminal status."""

    TERMINAL = frozenset({"completed", "cancelled", "failed", "expired"})

    def __init__(self, interval: float = PROGRESS_NOTIFY_INTERVAL_S, clock=time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def allow(self, job_id: str, status: str) -> bool:
        now = self.clock()
        with self._lock:
            last: Optional[tuple[str, float]] = self._last.get(job_id)
            if last is not None and last[0] == status and now - last[1] < self.interval:
                return False
            if status in self.TERMINAL:
                self._last.pop(job_id, None)
            else:
                self._last[job_id] = (status, now)
            return True
