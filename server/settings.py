"""Settings of one service instance (``python -m server run`` fills them from its options)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from server.auth import LOGIN_LINK_MINUTES
from server.guard.hosts import default_allowed_hosts
from server.image_budget import DEFAULT_MAX_IMAGE_PIXELS


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
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    """Pixel budget of one image (``server.image_budget``): imports, thumbnails, overlays."""
    allowed_hosts: list[str] = field(default_factory=lambda: default_allowed_hosts("127.0.0.1"))
    """Host names the server answers to (``server.guard.hosts``)."""
    secure_cookies: bool = False
    login_link_minutes: float = LOGIN_LINK_MINUTES
    behind_proxy: Optional[list[str]] = None
    """Addresses of the reverse proxy whose X-Forwarded-Proto/-For are trusted (None: no proxy)."""
    max_active_exports_per_user: Optional[int] = 3
    """R10: queued + running exports per user over all projects (None: no limit)."""
    archive_quota_bytes: Optional[int] = 2048 * 1024 * 1024
    """R10: kept archives per user (None: no limit)."""
    round_robin: bool = True
    """R10: the next job is the oldest of the user who waited longest (False: first in, first out)."""
    # The cluster (issue 20): PostgreSQL at ``database_url``; ``data_dir`` is then the folder
    # every replica and worker shares (``--shared-dir``).
    database_url: Optional[str] = None
    lease_seconds: float = 30.0  # R7: a worker silent this long is presumed dead
    grace_seconds: float = 30.0  # how long a stopping worker lets its exports finish
    extra: dict[str, Any] = field(default_factory=dict)
