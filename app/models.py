"""Pydantic models shared by the page (Pyodide) and the server (CPython).

These are the wire contract of ``DESIGN.md``: export options, the job JSON and the
WebSocket events (R6). Both sides validate with the very same classes, so an option the
page accepts is an option the server accepts.
"""
from __future__ import annotations

from typing import Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

JobStatus = Literal["queued", "running", "completed", "cancelled", "failed", "expired"]
ACTIVE_STATUSES: frozenset[str] = frozenset({"queued", "running"})
TERMINAL_STATUSES: frozenset[str] = frozenset({"completed", "cancelled", "failed", "expired"})

AnnotationFormat = Literal["coco", "yolo", "json"]
MetricsFormat = Literal["csv", "xlsx", "json"]

EventType = Literal[
    "export.started",
    "export.progress",
    "export.completed",
    "export.cancelled",
    "export.failed",
]

_HEX_COLOUR = r"^#[0-9a-fA-F]{6}$"


class VisualizationOptions(BaseModel):
    """Style of the overlay PNGs (``visualizations/<stem>_overlay.png``).

    Colours are ``#rrggbb``; ``stroke_width`` and ``font_size`` are in image pixels;
    ``opacity`` is the alpha of the drawn outlines, 0..1.
    """

    model_config = ConfigDict(extra="forbid")

    outline_color: str = Field("#00ff00", pattern=_HEX_COLOUR)
    hole_color: str = Field("#ff00ff", pattern=_HEX_COLOUR)
    stroke_width: int = Field(2, ge=1, le=20)
    font_size: int = Field(12, ge=6, le=72)
    opacity: float = Field(1.0, ge=0.0, le=1.0)
    show_numbers: bool = True


class ExportOptions(BaseModel):
    """What to put in an export archive. Omitted fields take the defaults below.

    ``image_ids`` null means every image of the project; ``pixel_size_um`` is the pixel
    size in micrometres per pixel (0.001..1000) or null for pixel units.
    Raises ``pydantic.ValidationError`` naming the field and the reason on bad input.
    """

    model_config = ConfigDict(extra="forbid")

    annotation_formats: list[AnnotationFormat] = Field(default_factory=lambda: ["coco"])
    metrics_formats: list[MetricsFormat] = Field(default_factory=list)
    image_ids: Optional[list[int]] = None
    include_images: bool = False
    include_visualizations: bool = False
    visualization: VisualizationOptions = Field(default_factory=VisualizationOptions)
    pixel_size_um: Optional[float] = Field(None, ge=0.001, le=1000, allow_inf_nan=False)

    @field_validator("annotation_formats", "metrics_formats")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        # A format listed twice is almost surely a client bug; keep order, drop repeats.
        seen: list[str] = []
        for item in value:
            if item not in seen:
                seen.append(item)
        return seen

    @field_validator("image_ids")
    @classmethod
    def _non_empty(cls, value: Optional[list[int]]) -> Optional[list[int]]:
        if value is not None and len(value) == 0:
            raise ValueError("select at least one image, or null for all images")
        # An image is exported once however often it is listed; the job keeps the short list.
        return None if value is None else list(dict.fromkeys(value))

    @model_validator(mode="after")
    def _something_to_export(self) -> "ExportOptions":
        # An archive with only a README is never what a researcher meant.
        if not (self.annotation_formats or self.metrics_formats or self.include_images or self.include_visualizations):
            raise ValueError(
                "nothing to export: choose an annotation or metrics format, original images or visualizations"
            )
        return self


class ExportJob(BaseModel):
    """The job JSON of ``DESIGN.md``. Times are ISO-8601 UTC strings; ``progress`` 0..100;
    ``seq`` grows by one per job event (R6); ``size_bytes`` is the archive size once completed."""

    id: str
    project_id: int
    status: JobStatus
    progress: float = 0.0
    stage: str = ""
    message: str = ""
    seq: int = 0
    created_at: str
    finished_at: Optional[str] = None
    delivered: bool = False
    size_bytes: Optional[int] = None
    warnings: list[str] = Field(default_factory=list)
    options: ExportOptions = Field(default_factory=ExportOptions)
    start_token: Optional[str] = None
    """The ``start_token`` the start request carried (R1): the client's name for its start,
    so that a cancel clicked before the 202 can name the job it is about."""
    sha256: Optional[str] = None
    """The archive's SHA-256 (hex) once completed: the download's ``ETag``, so a client can
    check the file it got and resume a cut download (``If-Range``)."""


EVENT_FOR_STATUS: dict[str, str] = {
    "queued": "export.started",
    "running": "export.progress",
    "completed": "export.completed",
    "cancelled": "export.cancelled",
    "failed": "export.failed",
    "expired": "export.failed",
}


class ExportEvent(BaseModel):
    """A WebSocket event (R6). ``ts`` is milliseconds since the Unix epoch."""

    type: EventType
    job_id: str
    project_id: int
    seq: int
    status: JobStatus
    progress: float
    stage: str = ""
    message: str = ""
    ts: float
    start_token: Optional[str] = None

    @classmethod
    def from_job(cls, job: ExportJob, ts: float) -> "ExportEvent":
        """The event that tells ``job`` as it is now, stamped ``ts`` (ms): the one source of an
        event's fields for the server's job store, its WebSocket snapshot and the test fakes."""
        return cls(type=EVENT_FOR_STATUS[job.status], job_id=job.id, project_id=job.project_id,  # type: ignore[arg-type]
                   seq=job.seq, status=job.status, progress=job.progress, stage=job.stage,
                   message=job.message, ts=ts, start_token=job.start_token)
