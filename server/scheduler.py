"""Which queued export a free worker runs next (R10): round-robin over users.

``FairQueue.get`` hands out the oldest job of the user who has waited longest for a worker:
a user who was never served before anyone who was, then whoever was served least recently;
so one user's single export starts as soon as a worker is free, however many exports another
user has queued. With ``round_robin=False`` it is first in, first out over all users (the
baseline of bench P7).
"""
from __future__ import annotations

import itertools
import threading
from collections import deque
from typing import Optional


class FairQueue:
    """Queued job ids per user; thread-safe. ``get`` blocks until a job or ``close``."""

    def __init__(self, round_robin: bool = True) -> None:
        self.round_robin = round_robin
        self._cond = threading.Condition()
        self._queued: dict[int, deque[tuple[int, str]]] = {}  # user -> (arrival, job id), oldest first
        self._last_served: dict[int, int] = {}  # user -> the turn it was last served in
        self._arrivals = itertools.count()
        self._turns = itertools.count(1)
        self._closed = False

    def put(self, user_id: int, job_id: str) -> None:
        with self._cond:
            self._queued.setdefault(user_id, deque()).append((next(self._arrivals), job_id))
            self._cond.notify()

    def discard(self, job_id: str) -> bool:
        """Take a job out (it was cancelled while queued); False if it is not queued."""
        with self._cond:
            for user_id, jobs in self._queued.items():
                for item in jobs:
                    if item[1] == job_id:
                        jobs.remove(item)
                        if not jobs:
                            del self._queued[user_id]
                        return True
        return False

    def get(self) -> Optional[str]:
        """The next job id to run (blocking); None once the queue is closed."""
        with self._cond:
            while not self._queued and not self._closed:
                self._cond.wait()
            if self._closed:
                return None
            user_id = min(self._queued, key=self._priority)
            jobs = self._queued[user_id]
            _, job_id = jobs.popleft()
            if not jobs:
                del self._queued[user_id]
            self._last_served[user_id] = next(self._turns)
            return job_id

    def _priority(self, user_id: int) -> tuple[int, int]:
        oldest = self._queued[user_id][0][0]
        if not self.round_robin:
            return (0, oldest)
        return (self._last_served.get(user_id, 0), oldest)

    def close(self) -> None:
        """Wake every waiting ``get`` with None; jobs still queued stay queued in the database
        (the next start runs them, R7)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def __len__(self) -> int:
        with self._cond:
            return sum(len(jobs) for jobs in self._queued.values())
