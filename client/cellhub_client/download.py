"""Download a completed export to a path: through a temporary name, resumed after a cut,
verified before the final rename.

The bytes go to ``.<name>.<job id>.part`` beside the target. A connection cut mid-file is
resumed with ``Range: bytes=<received>-`` and ``If-Range: <ETag>`` (the archive's SHA-256),
so the bytes already there are kept only if the server still has the same archive; an
answer 200 instead of 206 starts the file over. A ``.part`` file left by an earlier run
that lost the network is resumed the same way. Once every byte is there, the file's
SHA-256 must be the ``ETag`` and every member must match ``metadata.json``
(``cellhub_client.verify``); only then is the file renamed to the target (replacing a file
of that name). On any other way out (a refused or corrupt download, Ctrl+C) the ``.part``
file is removed; when the network stays away it is kept for the next try and
``Unreachable`` is raised.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import requests

from cellhub_client import platform
from cellhub_client.errors import Unreachable, for_answer
from cellhub_client.progress import ProgressCallback, ProgressUpdate, silent
from cellhub_client.shared.models import ExportJob
from cellhub_client.shared.routes import download_path
from cellhub_client.transport import RETRIED_STATUSES, Transport, backoff
from cellhub_client.verify import check_digest, check_members

CHUNK = 1 << 20
NET_CHUNK = 1 << 16
"""Bytes asked of the network per read: a read cut short by a broken connection loses what
it had gathered (urllib3 raises instead of returning the short piece), so a cut costs at
most this much of what had arrived, and a connection that breaks every few hundred KB
still makes progress."""
MAX_FAILURES = 8
"""Tries in a row that bring no byte before giving up (a try that brings bytes resets it)."""
_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+|\*)")


@dataclass(frozen=True)
class Download:
    """A verified archive at ``path``: the job it came from, its SHA-256 and size, how many
    times the transfer was resumed, and its ``metadata.json``."""

    path: Path
    job: ExportJob
    sha256: str
    size_bytes: int
    resumed: int
    metadata: dict = field(repr=False, default_factory=dict)


class _Cut(Exception):
    """The answer ended before all its bytes came."""


@dataclass
class _Partial:
    """The ``.part`` file being filled: its path, bytes so far, their running SHA-256."""

    path: Path
    size: int = 0
    sha: Any = field(default_factory=hashlib.sha256)

    def restart(self) -> None:
        self.size, self.sha = 0, hashlib.sha256()
        self.path.write_bytes(b"")

    def adopt_existing(self) -> None:
        """Take over a ``.part`` file an earlier run left (hashing what it holds)."""
        with open(self.path, "rb") as existing:
            while chunk := existing.read(CHUNK):
                self.sha.update(chunk)
                self.size += len(chunk)


def download_job(transport: Transport, job: ExportJob, path: str | os.PathLike,
                 progress: ProgressCallback = silent) -> Download:
    """Download the completed ``job``'s archive to ``path`` (see the module docstring)."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = _Partial(target.with_name(f".{target.name}.{job.id}.part"))
    try:
        etag, resumed = _receive(transport, job, partial, progress)
        actual = partial.sha.hexdigest()
        if etag:
            check_digest(actual, etag.strip('"'), "the download")
        if job.sha256:
            check_digest(actual, job.sha256, "the download")
        metadata = check_members(partial.path)
        os.replace(partial.path, target)
    except Unreachable:
        raise  # the .part file stays for a later resume
    except BaseException:
        partial.path.unlink(missing_ok=True)
        raise
    return Download(target, job, actual, partial.size, resumed, metadata)


def _receive(transport: Transport, job: ExportJob, partial: _Partial, progress: ProgressCallback) -> tuple[str, int]:
    """Fill ``partial`` with the whole archive; ``(ETag, resumes)``."""
    etag = f'"{job.sha256}"' if job.sha256 else None
    if partial.path.exists() and etag is not None:
        partial.adopt_existing()
    else:
        partial.restart()
    failures, resumes = 0, 0
    while True:
        headers = {"Range": f"bytes={partial.size}-", "If-Range": etag} if partial.size and etag else {}
        try:
            with transport.stream(download_path(job.id), headers) as response:
                etag = _take_answer(response, partial) or etag
                total = _expected_total(response, partial)
                if total is not None and partial.size >= total:
                    return etag or "", resumes
                with open(partial.path, "ab") as out:
                    for chunk in response.iter_content(NET_CHUNK):
                        out.write(chunk)
                        partial.sha.update(chunk)
                        partial.size += len(chunk)
                        failures = 0
                        progress(ProgressUpdate.of_bytes(job, partial.size, total))
                if total is not None and partial.size < total:
                    raise _Cut(f"{partial.size} of {total} bytes")
                return etag or "", resumes
        except (*platform.TRANSPORT_ERRORS, _Cut) as exc:
            failures += 1
            if failures > MAX_FAILURES:
                raise Unreachable(f"the download of export {job.id} broke off {failures} times: {exc}") from None
            platform.sleep(backoff(failures - 1))
            resumes += 1


def _take_answer(response: requests.Response, partial: _Partial) -> Optional[str]:
    """Check the status and line ``partial`` up with the answer: a 200 (or a 206 that does not
    start where the file ends) starts it over. The answer's ETag."""
    status = response.status_code
    if status == 416:
        return response.headers.get("ETag")  # nothing past what we have: ``_expected_total`` decides
    if status in RETRIED_STATUSES:
        raise _Cut(f"the hub answered {status}")  # a proxy or a restarting server: try again
    if status not in (200, 206):
        raise for_answer(status, _json_or_none(response))
    if status == 200:
        partial.restart()
    elif _content_range(response)[0] != partial.size:
        partial.restart()  # not the bytes we asked for: ask again for all of it
        raise _Cut("a 206 answer that does not continue the file")
    return response.headers.get("ETag")


def _expected_total(response: requests.Response, partial: _Partial) -> Optional[int]:
    """The archive's full size as the answer tells it (None when it does not)."""
    if response.status_code == 416:
        size = _content_range(response)[2]
        if size is None or partial.size > size:
            partial.restart()  # more than the archive holds: not this archive; start over
            raise _Cut("the partial file is longer than the archive")
        return size
    if response.status_code == 206:
        return _content_range(response)[2]
    length = response.headers.get("Content-Length")
    return int(length) if length and length.isdigit() else None


def _content_range(response: requests.Response) -> tuple[int, int, Optional[int]]:
    header = response.headers.get("Content-Range", "")
    if response.status_code == 416:
        match = re.fullmatch(r"bytes \*/(\d+)", header.strip())
        return 0, 0, int(match.group(1)) if match else None
    match = _CONTENT_RANGE.fullmatch(header.strip())
    if match is None:
        raise _Cut(f"a 206 answer without a usable Content-Range ({header!r})")
    first, last, size = match.groups()
    return int(first), int(last), None if size == "*" else int(size)


def _json_or_none(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None
