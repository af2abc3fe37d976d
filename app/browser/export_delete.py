"""Deleting a finished export from the history (``DELETE /api/exports/{job_id}``, R10)."""
from __future__ import annotations

from typing import Optional

from app.browser.net import Unreachable, request_json
from app.errors import error_text

FINISHED = ("completed", "cancelled", "failed", "expired")
"""Statuses whose entries get a Delete action (a queued or running export is cancelled first)."""


async def delete_export(job_id: str) -> Optional[str]:
    """Delete the export; None when done (or already gone), else why not, for the page."""
    try:
        status, body = await request_json("DELETE", f"/api/exports/{job_id}")
    except Unreachable:
        return "The export could not be deleted: the server cannot be reached."
    if status in (200, 404):
        return None
    return f"The export could not be deleted: {error_text(body, status)}"
