"""What the export page keeps in localStorage (C4, C5), as pydantic models.

Keys (all under ``cellhub.export.v1.``):

- ``cellhub.export.v1.<project_id>``: the persisted export of a project,
  ``PersistedExport`` = ``{v: 1, saved_at, project_id, job, tab_id}`` (C5). Dropped, with a
  warning, when older than ``PERSIST_TTL_MS`` (24 h, the server's default archive TTL of
  R5), of an unknown version, for another project, or not valid JSON/model.
- ``cellhub.export.v1.cancelled.<job_id>``: a cancel was clicked for the job (C1),
  written before the cancel request leaves.
- ``cellhub.export.v1.claimed.<job_id>``: a tab of this browser handed the job's archive
  to the browser (C4), written by the lock holder before the download starts; removed when
  the server never recorded that download.
- ``cellhub.export.v1.downloaded.<job_id>``: the server recorded this browser's download
  of the job (C9): written only after the server said so.
- ``cellhub.export.v1.undelivered.<job_id>``: this browser's download of the job did not
  reach the server in time (C9): every tab, and a reload, offer it again; removed by the
  next claim.
- ``cellhub.export.v1.ended.<job_id>``: the tombstone ``clear`` leaves behind: the tab
  that settled the job (cancelled, failed, gone, dismissed) removed its record, and no
  tab may write it back from news still on its way (I5: storage never keeps a job after
  its cancel or failure settled). ``save`` refuses a job with a tombstone or a
  ``cancelled`` mark.
- ``cellhub.export.v1.browser``: this browser's id, shared by its tabs (``app.identity``,
  C10).
- ``cellhub.export.v1.start-cancelled.<start_token>``: a cancel was clicked while the
  start request named ``start_token`` was unanswered (the job id unknown). The server keeps
  the token on the job it made (R1), so any tab that meets that job turns this mark into
  the job's ``cancelled`` mark and cancels it; removed when the clicking tab gets its
  answer.

Marks are ``JobMark`` = ``{v: 1, ts, tab_id}`` and count for ``MARK_TTL_MS`` (24 h, after
which the archive is gone anyway); an expired or corrupt mark is removed when read. Times
are milliseconds since the Unix epoch.
"""
from __future__ import annotations

import json
from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from app.machine import Marks
from app.models import ACTIVE_STATUSES, ExportJob
from app.ports import Log, Storage

PREFIX = "cellhub.export.v1."
PERSIST_VERSION = 1
PERSIST_TTL_MS = 24 * 3600 * 1000.0
MARK_TTL_MS = 24 * 3600 * 1000.0
MARK_KINDS = ("cancelled", "claimed", "downloaded", "undelivered")
TOMBSTONE = "ended"


class PersistedExport(BaseModel):
    """The C5 record of one project."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1]
    saved_at: float
    project_id: int
    job: ExportJob
    tab_id: str = ""


class JobMark(BaseModel):
    """A C1/C4 mark: which tab wrote it (``tab_id``) and when (``ts``, ms)."""

    model_config = ConfigDict(extra="ignore")

    v: Literal[1]
    ts: float
    tab_id: str = ""


def storage_key(project_id: int) -> str:
    """``cellhub.export.v1.<project_id>``."""
    return f"{PREFIX}{int(project_id)}"


def mark_key(kind: str, job_id: str) -> str:
    """``cellhub.export.v1.<kind>.<job_id>`` for ``kind`` in ``MARK_KINDS`` or ``TOMBSTONE``
    (ValueError otherwise)."""
    if kind not in MARK_KINDS and kind != TOMBSTONE:
        raise ValueError(f"unknown mark kind {kind!r}")
    return f"{PREFIX}{kind}.{job_id}"


def decode_record(raw: Optional[str], project_id: int, now_ms: float) -> tuple[Optional[PersistedExport], Optional[str]]:
    """Parse a stored record: ``(record, None)``, ``(None, None)`` when nothing is stored, or
    ``(None, reason)`` when it must be dropped (corrupt, unknown version, other project,
    expired). Pure."""
    if raw is None:
        return None, None
    try:
        data = json.loads(raw)
    except (ValueError, TypeError):
        return None, "corrupt (not JSON)"
    if not isinstance(data, dict):
        return None, "corrupt (not an object)"
    if data.get("v") != PERSIST_VERSION:
        return None, f"unknown version {data.get('v')!r}"
    try:
        record = PersistedExport.model_validate(data)
    except ValidationError as exc:
        return None, f"corrupt ({exc.error_count()} invalid fields)"
    if record.project_id != project_id or record.job.project_id != project_id:
        return None, "for another project"
    if now_ms - record.saved_at > PERSIST_TTL_MS:
        return None, "expired"
    return record, None


def load(storage: Storage, project_id: int, now_ms: float, log: Log) -> Optional[PersistedExport]:
    """The project's valid record, or None. A record that must be dropped is removed and
    reported with ``log.warn`` (never raises); so is a record of a job that has a
    tombstone or a ``cancelled`` mark (written back by a tab that had not heard yet)."""
    key = storage_key(project_id)
    record, problem = decode_record(storage.get(key), project_id, now_ms)
    if record is not None and _settled(storage, record.job.id, now_ms, log):
        record, problem = None, f"job {record.job.id} was cancelled or has ended"
    if problem is not None:
        log.warn(f"dropped persisted export {key}: {problem}")
        storage.remove(key)
    return record


def save(storage: Storage, project_id: int, job: ExportJob, now_ms: float, tab_id: str,
         replace_other: bool = False) -> bool:
    """Write ``job`` as the project's record unless that changes nothing a reload needs, or
    storage holds newer news: the record already holds the same job with a higher seq, or
    with the same seq and the delivered flag, or with the same status and delivered flag (progress is not kept: a reload re-queries the
    job, C8; and every write wakes every other tab, so of the tabs that hear one event only
    the first writes); or, when not ``replace_other``, another job that is still active; or
    the job was cancelled or has ended (its ``cancelled`` mark or tombstone exists). Returns
    True when written."""
    if _settled(storage, job.id, now_ms, None):
        return False
    key = storage_key(project_id)
    current, _ = decode_record(storage.get(key), project_id, now_ms)
    if current is not None:
        cur = current.job
        if cur.id == job.id:
            if cur.seq > job.seq or (cur.status, cur.delivered) == (job.status, job.delivered):
                return False
            if cur.seq == job.seq and cur.delivered:
                return False  # the delivered flag is news no copy of the same event takes back
        elif not replace_other and cur.status in ACTIVE_STATUSES:
            return False
    record = PersistedExport(v=PERSIST_VERSION, saved_at=now_ms, project_id=project_id, job=job,
                             tab_id=tab_id)
    storage.set(key, record.model_dump_json())
    return True


def clear(storage: Storage, project_id: int, job_id: str, now_ms: Optional[float] = None,
          tab_id: str = "") -> bool:
    """Remove the project's record if it is about ``job_id`` or unreadable; a record of
    another job stays (another tab's newer export). With ``now_ms``, first write the job's
    tombstone so that no later ``save`` brings the record back (unless a valid one is there
    already: every tab clears the same job, and each write would wake every other tab with a
    ``storage`` event for nothing). Returns True when removed."""
    if now_ms is not None and not has_mark(storage, TOMBSTONE, job_id, now_ms, None):
        write_mark(storage, TOMBSTONE, job_id, now_ms, tab_id)
    key = storage_key(project_id)
    raw = storage.get(key)
    if raw is None:
        return False
    try:
        data = json.loads(raw)
        same = isinstance(data, dict) and isinstance(data.get("job"), dict) and data["job"].get("id") == job_id
        readable = isinstance(data, dict) and data.get("v") == PERSIST_VERSION and isinstance(data.get("job"), dict)
    except (ValueError, TypeError):
        same, readable = False, False
    if same or not readable:
        storage.remove(key)
        return True
    return False


def write_mark(storage: Storage, kind: str, job_id: str, now_ms: float, tab_id: str) -> None:
    """Write the ``kind`` mark of ``job_id`` (see module doc)."""
    storage.set(mark_key(kind, job_id), JobMark(v=1, ts=now_ms, tab_id=tab_id).model_dump_json())


def clear_mark(storage: Storage, kind: str, job_id: str) -> None:
    """Remove the ``kind`` mark of ``job_id`` (nothing when there is none)."""
    key = mark_key(kind, job_id)
    if storage.get(key) is not None:
        storage.remove(key)


def _settled(storage: Storage, job_id: str, now_ms: float, log: Optional[Log]) -> bool:
    return (has_mark(storage, "cancelled", job_id, now_ms, log)
            or has_mark(storage, TOMBSTONE, job_id, now_ms, log))


def has_mark(storage: Storage, kind: str, job_id: str, now_ms: float, log: Optional[Log]) -> bool:
    """True when a valid, unexpired ``kind`` mark exists; corrupt or expired ones are
    removed (corrupt ones with a warning when ``log`` is given)."""
    return _valid_mark(storage, mark_key(kind, job_id), now_ms, log)


def _valid_mark(storage: Storage, key: str, now_ms: float, log: Optional[Log]) -> bool:
    raw = storage.get(key)
    if raw is None:
        return False
    try:
        mark = JobMark.model_validate_json(raw)
    except ValidationError:
        if log is not None:
            log.warn(f"dropped corrupt mark {key}")
        storage.remove(key)
        return False
    if now_ms - mark.ts > MARK_TTL_MS:
        storage.remove(key)
        return False
    return True


START_CANCEL = "start-cancelled."


def start_cancel_key(start_token: str) -> str:
    """``cellhub.export.v1.start-cancelled.<start_token>``."""
    return f"{PREFIX}{START_CANCEL}{start_token}"


def parse_start_cancel_key(key: str) -> Optional[str]:
    """The start token of a start-cancelled mark's key, else None."""
    head = PREFIX + START_CANCEL
    return (key[len(head):] or None) if key.startswith(head) else None


def write_start_cancel(storage: Storage, start_token: str, now_ms: float, tab_id: str) -> None:
    """Write the start-cancelled mark of ``start_token`` (see module doc)."""
    storage.set(start_cancel_key(start_token), JobMark(v=1, ts=now_ms, tab_id=tab_id).model_dump_json())


def clear_start_cancel(storage: Storage, start_token: str) -> None:
    """Remove the start-cancelled mark of ``start_token``."""
    storage.remove(start_cancel_key(start_token))


def has_start_cancel(storage: Storage, start_token: str, now_ms: float, log: Optional[Log]) -> bool:
    """True while a valid start-cancelled mark of ``start_token`` younger than
    ``MARK_TTL_MS`` exists (corrupt or expired ones are removed)."""
    return _valid_mark(storage, start_cancel_key(start_token), now_ms, log)


def read_marks(storage: Storage, job_id: str, now_ms: float, log: Log) -> Marks:
    """The marks of ``job_id`` as a ``Marks``."""
    return Marks(**{kind: has_mark(storage, kind, job_id, now_ms, log) for kind in MARK_KINDS})


def parse_mark_key(key: str) -> Optional[tuple[str, str]]:
    """``(kind, job_id)`` for a mark key, else None."""
    if not key.startswith(PREFIX):
        return None
    rest = key[len(PREFIX):]
    for kind in MARK_KINDS:
        if rest.startswith(kind + "."):
            return kind, rest[len(kind) + 1:]
    return None
