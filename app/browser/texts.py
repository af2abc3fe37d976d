"""What the page says: status lines, stage names, sizes, durations, time left.

Pure (no ``js``), so the wording and the arithmetic are tested in CPython.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Optional

STATUS_TEXT: dict[str, str] = {
    "idle": "Ready to export.",
    "restoring": "Checking the last export…",
    "starting": "Starting the export…",
    "queued": "Export queued…",
    "running": "Exporting…",
    "cancelling": "Cancelling…",
    "cancelled": "Export cancelled.",
    "completed": "Export ready.",
    "downloading": "Downloading…",
    "delivering": "Downloading…",
    "downloaded": "Downloaded.",
    "undelivered": "The download did not complete.",
    "failed": "Export failed.",
}
"""The live status line per machine state (``app.machine.STATES``)."""

STAGE_TEXT: dict[str, str] = {
    "queued": "Waiting to start",
    "starting": "Starting",
    "annotations": "Writing annotations",
    "metrics": "Measuring objects",
    "images": "Adding images",
    "visualizations": "Drawing overlays",
    "finalizing": "Finishing the archive",
    "done": "Done",
    "cancelled": "Cancelled",
    "failed": "Failed",
}
"""Readable names of the server's job stages (``server.archive.writer`` checkpoints)."""

HISTORY_STATUS_TEXT: dict[str, str] = {
    "queued": "Queued",
    "running": "Running",
    "completed": "Ready",
    "cancelled": "Cancelled",
    "failed": "Failed",
    "expired": "Expired",
}


def status_line(status: str, error: Optional[str], notice: Optional[str], job_message: str = "") -> str:
    """The text of the aria-live status region for machine state ``status``.

    Progress messages are left out on purpose (they change several times a second and a
    screen reader would read every one); a failure names the server's reason; ``notice``
    (e.g. "downloaded in another tab") is appended as given."""
    text = STATUS_TEXT.get(status, status)
    if status == "failed":
        detail = error or job_message
        text = f"Export failed: {detail}" if detail else text
    if notice:
        text = f"{text} {notice}"  # the wording other tests and tabs already rely on
    return text


def stage_text(stage: str) -> str:
    """The readable name of a job stage; unknown stages are shown as given."""
    if not stage:
        return ""
    return STAGE_TEXT.get(stage, stage.replace("_", " ").capitalize())


def format_bytes(size: Optional[int]) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units, as file managers show them); ``""`` for None."""
    if size is None:
        return ""
    if size < 1000:
        return f"{size} B"
    value = float(size)
    for unit in ("kB", "MB", "GB", "TB"):
        value /= 1000.0
        if value < 999.95 or unit == "TB":
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
    return f"{size} B"  # pragma: no cover - the loop always returns


def format_duration(ms: Optional[float]) -> str:
    """``65_000`` -> ``"1 min 05 s"``; under a minute ``"12 s"``; from an hour ``"1 h 02 min"``.
    Negative values count as 0; ``""`` for None."""
    if ms is None:
        return ""
    seconds = int(max(0.0, ms) // 1000)
    if seconds < 60:
        return f"{seconds} s"
    minutes, sec = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def parse_iso_ms(value: Optional[str]) -> Optional[float]:
    """Milliseconds since the Unix epoch of an ISO-8601 time (naive = UTC); None if empty or
    unreadable."""
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed.timestamp() * 1000.0


def relative_time(then_ms: Optional[float], now_ms: float) -> str:
    """``"just now"``, ``"5 min ago"``, ``"3 h ago"``, ``"2 days ago"``; ``""`` for None."""
    if then_ms is None:
        return ""
    seconds = max(0.0, now_ms - then_ms) / 1000.0
    if seconds < 45:
        return "just now"
    if seconds < 3600:
        return f"{max(1, round(seconds / 60))} min ago"
    if seconds < 86400:
        return f"{round(seconds / 3600)} h ago"
    days = round(seconds / 86400)
    return "1 day ago" if days == 1 else f"{days} days ago"


@dataclass
class EtaEstimator:
    """Time left of a job from the progress seen in this tab.

    ``observe(now_ms, progress)`` records a sample (progress 0..100); ``remaining_ms(now_ms)``
    is the linear extrapolation from the first sample of the job to the latest one, less
    the time since the latest, or None until there are ``min_span_ms`` of samples showing
    at least ``min_gain`` points of progress (a guess from one checkpoint is noise).
    ``reset()`` forgets the job."""

    min_span_ms: float = 1500.0
    min_gain: float = 1.0
    first: Optional[tuple[float, float]] = None
    last: Optional[tuple[float, float]] = None

    def reset(self) -> None:
        self.first = self.last = None

    def observe(self, now_ms: float, progress: float) -> None:
        progress = max(0.0, min(100.0, float(progress)))
        if self.last is not None and progress < self.last[1]:
            self.reset()  # another job, or the server restarted it
        if self.first is None:
            self.first = (now_ms, progress)
        if self.last is None or progress != self.last[1]:
            self.last = (now_ms, progress)

    def remaining_ms(self, now_ms: float) -> Optional[float]:
        if self.first is None or self.last is None:
            return None
        (t0, p0), (t1, p1) = self.first, self.last
        if t1 - t0 < self.min_span_ms or p1 - p0 < self.min_gain or p1 >= 100.0:
            return None
        rate = (p1 - p0) / (t1 - t0)
        return max(0.0, (100.0 - p1) / rate - (now_ms - t1))


def time_left_text(remaining: Optional[float], progress: float = 100.0) -> str:
    """``"About 40 s left"``; under 3 s ``"Almost done"`` from 85 % on, ``"A few seconds
    left"`` before (stages do not all go at the same pace); ``""`` when unknown."""
    if remaining is None:
        return ""
    if remaining < 3000:
        return "Almost done" if progress >= 85 else "A few seconds left"
    return f"About {format_duration(remaining)} left"


def job_duration_ms(job: Any) -> Optional[float]:
    """How long a finished job ran (``finished_at - created_at``), None if unknown."""
    start = parse_iso_ms(getattr(job, "created_at", None) if not isinstance(job, dict) else job.get("created_at"))
    end = parse_iso_ms(getattr(job, "finished_at", None) if not isinstance(job, dict) else job.get("finished_at"))
    if start is None or end is None:
        return None
    return max(0.0, end - start)


def expiry_text(expires_ms: Optional[float], now_ms: float) -> str:
    """An API token's lifetime as the page lists it: ``"never expires"``, ``"expired"``,
    ``"expires today"``, ``"expires in 1 day"``, ``"expires in 29 days"``."""
    if expires_ms is None:
        return "never expires"
    left = expires_ms - now_ms
    if left <= 0:
        return "expired"
    days = round(left / 86_400_000)
    if days == 0:
        return "expires today"
    return "expires in 1 day" if days == 1 else f"expires in {days} days"


def token_summary(token: dict, now_ms: float) -> str:
    """One line about an API token (``GET /api/tokens`` item): its first characters, when it
    was made, its lifetime and its last use."""
    parts = [f"{token.get('prefix', '')}…", f"created {relative_time(parse_iso_ms(token.get('created_at')), now_ms)}"]
    parts.append("expired" if token.get("expired") else expiry_text(parse_iso_ms(token.get("expires_at")), now_ms))
    used = parse_iso_ms(token.get("last_used_at"))
    parts.append(f"last used {relative_time(used, now_ms)}" if used is not None else "never used")
    return " · ".join(parts)
