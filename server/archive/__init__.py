"""Archive writers of the export service: COCO, YOLO, the project's JSON, per-object metrics,
overlay PNGs, and ``write_archive`` that streams them into one zip."""
from server.archive.writer import ArchiveResult, write_archive

__all__ = ["ArchiveResult", "write_archive"]
