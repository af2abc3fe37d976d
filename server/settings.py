"""Settings of one service instance (``python -m server run`` fills them from its options)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional


@dataclass
class Settings:
    """Service settings. ``archive_ttl_seconds``: how long a completed archive is kept (R5)."""

    data_dir: Path
    archive_ttl_seconds: float = 24 * 3600
    test_hooks: bool = False
    workers: int = 2
    seed_demo: bool = True
    demo_images: int = 12
    demo_size: int = 512
    max_upload_bytes: int = 200 * 1024 * 1024
    max_active_exports_per_user: Optional[int] = 3
    """R10: queued + running exports per user over all projects (None: no limit)."""
    archive_quota_bytes: Optional[int] = 2048 * 1024 * 1024
    """R10: kept archives per user (None: no limit)."""
    round_robin: bool = True
    """R10: the next job is the oldest of the user who waited longest (False: first in, first out)."""
    extra: dict[str, Any] = field(default_factory=dict)
