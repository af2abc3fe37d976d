"""The cross-tab protocol (C6) and the storage-based stand-ins for BroadcastChannel and
Web Locks (C4), all pure: they talk to ``app.ports`` only.

Message (BroadcastChannel ``cellhub-export``), ``CrossTabMessage``:
``{v: 1, tab_id, project_id, job_id, kind, status, seq, ts}``; ``kind`` is one of
``MESSAGE_KINDS``; ``status`` is the job status the sender knew, ``seq`` its job seq
(R6), ``ts`` milliseconds since the Unix epoch. A tab ignores its own messages;
malformed ones are dropped with a warning.

``StorageChannel`` carries the same messages through the ``storage`` event (the fallback
where BroadcastChannel is missing). ``StorageClaimLocks`` is the Locks port where
``navigator.locks`` is missing: a claim ``{owner, expires}`` in localStorage, confirmed
after a short settle delay (last writer wins), expiring after ``ttl_ms``.
"""
from __future__ import annotations

import itertools
import json
from typing import Callable, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from app.machine import JobUpdate, Remote, Update
from app.models import ExportJob, JobStatus
from app.ports import Stop, Clock, Storage

CHANNEL_NAME = "cellhub-export"
MessageKind = Literal["started", "progress", "cancel-requested", "cancelled", "completed",
                      "download-claimed", "downloaded", "download-failed", "dismissed"]
MESSAGE_KINDS: tuple[str, ...] = ("started", "progress", "cancel-requested", "cancelled", "completed",
                                  "download-claimed", "downloaded", "download-failed", "dismissed")
STATUS_KINDS = frozenset({"started", "progress", "completed", "cancelled"})
"""Kinds that carry a job status change; the others are tab-to-tab facts."""

BUS_KEY = "cellhub.export.v1.bus"
LOCK_PREFIX = "cellhub.export.v1.lock."


class CrossTabMessage(BaseModel):
    """One C6 message (see module doc)."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1]
    tab_id: str = Field(min_length=1)
    project_id: int
    job_id: str = Field(min_length=1)
    kind: MessageKind
    status: JobStatus
    seq: int = Field(ge=0)
    ts: float


def make_message(tab_id: str, kind: str, job: ExportJob, ts: float) -> CrossTabMessage:
    """The message a tab posts about ``job``."""
    return CrossTabMessage(v=1, tab_id=tab_id, project_id=job.project_id, job_id=job.id, kind=kind,
                           status=job.status, seq=job.seq, ts=ts)


def parse_message(raw: object, own_tab_id: str) -> tuple[Optional[CrossTabMessage], Optional[str]]:
    """``(message, None)``; ``(None, None)`` for the tab's own message; ``(None, reason)`` for
    a malformed one."""
    if not isinstance(raw, dict):
        return None, f"not an object: {type(raw).__name__}"
    if raw.get("tab_id") == own_tab_id:
        return None, None
    try:
        return CrossTabMessage.model_validate(raw), None
    except ValidationError as exc:
        return None, f"{exc.error_count()} invalid fields"


def message_to_event(msg: CrossTabMessage) -> Union[Update, Remote]:
    """A status kind becomes an ``Update`` (source ``channel``), the others a ``Remote``."""
    if msg.kind in STATUS_KINDS:
        return Update(JobUpdate(msg.job_id, msg.project_id, msg.seq, msg.status), "channel")
    return Remote(msg.kind, msg.job_id, msg.project_id)


class StorageChannel:
    """A ``Channel`` over the ``storage`` event: ``post`` writes the message (with a nonce,
    since an unchanged value fires no event) to ``BUS_KEY``; other tabs receive it."""

    def __init__(self, storage: Storage, tab_id: str) -> None:
        self._storage = storage
        self._tab_id = tab_id
        self._counter = itertools.count(1)

    def post(self, message: dict) -> None:
        envelope = {"n": f"{self._tab_id}:{next(self._counter)}", "msg": message}
        self._storage.set(BUS_KEY, json.dumps(envelope))

    def subscribe(self, on_message: Callable[[dict], None]) -> Stop:
        def on_change(key: str, value: Optional[str]) -> None:
            if key != BUS_KEY or value is None:
                return
            try:
                envelope = json.loads(value)
            except ValueError:
                on_message({"malformed": value})  # the receiver warns and drops it
                return
            if isinstance(envelope, dict) and "msg" in envelope:
                on_message(envelope["msg"])
            else:
                on_message({"malformed": envelope})

        return self._storage.subscribe(on_change)


class _Claim(BaseModel):
    owner: str
    expires: float


class StorageClaimLocks:
    """A ``Locks`` port over localStorage (C4's fallback without ``navigator.locks``).

    ``try_acquire`` answers on a timer (never synchronously, like Web Locks): if a live
    claim of another owner exists -> ``None``; else it writes its claim and, ``confirm_ms``
    later, is granted only if its claim is still the stored one. A claim lapses after
    ``ttl_ms`` (ms) so a closed tab cannot block the others forever. Best effort: storage
    writes of two tabs within ``confirm_ms`` of each other resolve to the last writer.
    """

    def __init__(self, storage: Storage, clock: Clock, tab_id: str, ttl_ms: float = 10_000,
                 confirm_ms: float = 50) -> None:
        self._storage = storage
        self._clock = clock
        self._tab_id = tab_id
        self._ttl_ms = ttl_ms
        self._confirm_ms = confirm_ms
        self._tokens = itertools.count(1)

    def _read(self, key: str) -> Optional[_Claim]:
        raw = self._storage.get(key)
        if raw is None:
            return None
        try:
            return _Claim.model_validate_json(raw)
        except ValidationError:
            return None

    def try_acquire(self, name: str, on_result: Callable[[Optional[Stop]], None]) -> Stop:
        key = LOCK_PREFIX + name
        token = f"{self._tab_id}:{next(self._tokens)}"
        timer: Optional[Stop] = None
        granted = False
        decided = False

        def release() -> None:
            claim = self._read(key)
            if claim is not None and claim.owner == token:
                self._storage.remove(key)

        def confirm() -> None:
            nonlocal timer, granted, decided
            timer = None
            claim = self._read(key)
            decided = True
            if claim is not None and claim.owner == token:
                granted = True
                on_result(release)
            else:
                on_result(None)

        def attempt() -> None:
            nonlocal timer, decided
            now = self._clock.now()
            claim = self._read(key)
            if claim is not None and claim.owner != token and claim.expires > now:
                timer = None
                decided = True
                on_result(None)
                return
            self._storage.set(key, _Claim(owner=token, expires=now + self._ttl_ms).model_dump_json())
            timer = self._clock.set_timeout(confirm, self._confirm_ms)

        timer = self._clock.set_timeout(attempt, 0)

        def stop() -> None:
            nonlocal timer, granted
            if timer is not None:
                timer()
                timer = None
                if not decided:
                    release()  # a claim written but not yet confirmed
            if granted:
                granted = False
                release()

        return stop
