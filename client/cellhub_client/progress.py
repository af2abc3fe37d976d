"""What a ``progress`` callback receives: one ``ProgressUpdate`` per change."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal, Optional

from cellhub_client.shared.models import ExportJob


@dataclass(frozen=True)
class ProgressUpdate:
    """``phase`` ``"export"``: the server builds the archive; ``percent`` is the job's
    progress (0..100), ``job`` its latest state (``stage``, ``message``). ``phase``
    ``"download"``: ``done_bytes`` of ``total_bytes`` (None when the server did not say)
    are on disk, ``percent`` likewise."""

    phase: Literal["export", "download"]
    job: ExportJob
    percent: float
    done_bytes: int = 0
    total_bytes: Optional[int] = None

    @classmethod
    def of_job(cls, job: ExportJob) -> "ProgressUpdate":
        return cls("export", job, float(job.progress))

    @classmethod
    def of_bytes(cls, job: ExportJob, done: int, total: Optional[int]) -> "ProgressUpdate":
        percent = 100.0 * done / total if total else 0.0
        return cls("download", job, percent, done, total)


ProgressCallback = Callable[[ProgressUpdate], None]


def silent(update: ProgressUpdate) -> None:
    """The callback used when none is given."""
