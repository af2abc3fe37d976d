"""Archive writers of the export service: COCO, YOLO, the project's JSON, per-object metrics,
overlay PNGs, and ``write_archive`` that streams them into one zip."""
from __future__ import annotations

from typing import Any

__all__ = ["ArchiveResult", "write_archive"]


def __getattr__(name: str) -> Any:
    # Lazy (PEP 562): the metrics child process (metrics_child) imports modules of this
    # package and must not pay for numpy, shapely and pydantic, which the writer needs.
    if name in __all__:
        from server.archive import writer

        return getattr(writer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
