"""Password sign-in under attack: throttled, the same work for every name, bounded in parallel.

- Throttling (:class:`Throttle`), per user name (lower-cased) and per client address, each
  on its own: the first ``FREE_FAILURES`` (5) failures cost nothing; each further failure
  closes the key for ``BASE_DELAY_S * 2 ** (failures - FREE_FAILURES)`` seconds (1 s, 2 s,
  4 s, ... at most ``MAX_DELAY_S``, 15 min). While either key is closed, an attempt is
  answered 429 with ``Retry-After`` without any password being checked; once it is open
  again, a correct password signs in (and clears its name's failures; an address's
  failures are forgotten ``FORGET_AFTER_S`` after the last one). At most ``MAX_KEYS``
  keys are kept (the least recently failed go first), so a flood of names cannot grow
  the table without bound.
- The same work for unknown and known names: a name without a password hash is checked
  against a dummy argon2 hash (``server.auth.check_password``), so the answer's time does
  not tell whether the name exists.
- Bounded in parallel: argon2id takes 64 MiB and a core's worth of time per check, so
  checks run on ``parallel`` threads (half the cores, at least one), at a lower CPU priority
  than the rest of the server (nice 10 on Linux), and at most ``MAX_WAITING`` more wait
  for one; beyond that the answer is 429, Retry-After 1. Waiting costs a coroutine, not a
  thread of the server's pool, so pages keep being served.
"""
from __future__ import annotations

import asyncio
import math
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Optional

FREE_FAILURES = 5
BASE_DELAY_S = 1.0
MAX_DELAY_S = 15 * 60.0
FORGET_AFTER_S = 60 * 60.0
MAX_KEYS = 100_000
MAX_WAITING = 32


class Throttled(Exception):
    """The attempt is refused now; try again after ``retry_after`` seconds (an integer)."""

    def __init__(self, retry_after: int, reason: str):
        super().__init__(reason)
        self.retry_after = retry_after
        self.reason = reason


@dataclass
class _Failures:
    count: int = 0
    last: float = 0.0
    closed_until: float = 0.0


class Throttle:
    """Failure counts per key with exponential closing (see the module docstring).
    ``clock``: monotonic seconds (a test passes a fake one)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_keys: int = MAX_KEYS) -> None:
        self.clock = clock
        self.max_keys = max_keys
        self._keys: "OrderedDict[str, _Failures]" = OrderedDict()

    def _get(self, key: str) -> Optional[_Failures]:
        entry = self._keys.get(key)
        if entry is not None and self.clock() - entry.last > FORGET_AFTER_S:
            del self._keys[key]
            return None
        return entry

    def wait_for(self, *keys: str) -> float:
        """Seconds until every key in ``keys`` is open (0 if they all are)."""
        now = self.clock()
        return max([0.0] + [e.closed_until - now for k in keys if (e := self._get(k)) is not None])

    def failed(self, *keys: str) -> None:
        """Count one failure for each key, closing those past ``FREE_FAILURES``."""
        now = self.clock()
        for key in keys:
            entry = self._get(key) or _Failures()
            entry.count += 1
            entry.last = now
            if entry.count >= FREE_FAILURES:
                entry.closed_until = now + min(MAX_DELAY_S, BASE_DELAY_S * 2 ** (entry.count - FREE_FAILURES))
            self._keys[key] = entry
            self._keys.move_to_end(key)
        while len(self._keys) > self.max_keys:
            self._keys.popitem(last=False)

    def succeeded(self, key: str) -> None:
        self._keys.pop(key, None)

    def __len__(self) -> int:
        return len(self._keys)


CHECK_NICENESS = 10
"""How much lower the password-check threads run than the rest of the server (Linux nice)."""


def _lower_priority() -> None:
    """Give the calling thread a lower CPU priority (Linux: threads have their own nice
    value), so that pages and exports keep their share of the cores while guesses are
    checked; elsewhere nothing changes."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), CHECK_NICENESS)
    except (AttributeError, OSError):
        pass


def default_parallel() -> int:
    return max(1, (os.cpu_count() or 2) // 2)


class SignInGuard:
    """Runs ``check(username, password) -> user id or None`` (blocking: a password hash
    check) for a client under the rules of the module docstring."""

    def __init__(self, check: Callable[[str, str], Optional[int]], parallel: Optional[int] = None,
                 max_waiting: int = MAX_WAITING, clock: Callable[[], float] = time.monotonic) -> None:
        self.check = check
        self.parallel = parallel or default_parallel()
        self.max_waiting = max_waiting
        self.throttle = Throttle(clock)
        self._pool = ThreadPoolExecutor(max_workers=self.parallel, thread_name_prefix="password-check",
                                        initializer=_lower_priority)
        self._queued = 0

    async def sign_in(self, client: str, username: str, password: str) -> Optional[int]:
        """The user's id, or None for a wrong name or password. Raises :class:`Throttled`."""
        keys = (f"name:{username.strip().lower()}", f"address:{client}")
        wait = self.throttle.wait_for(*keys)
        if wait > 0:
            raise Throttled(math.ceil(wait), "too many failed sign-ins: wait before trying again")
        if self._queued >= self.parallel + self.max_waiting:
            raise Throttled(1, "too many sign-ins at once: try again in a moment")
        self._queued += 1
        try:
            user_id = await asyncio.get_running_loop().run_in_executor(self._pool, self.check, username, password)
        finally:
            self._queued -= 1
        if user_id is None:
            self.throttle.failed(*keys)
        else:
            self.throttle.succeeded(keys[0])
        return user_id

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
