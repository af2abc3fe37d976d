"""The export API's paths (DESIGN.md), as the page and the test fakes call them."""
from __future__ import annotations

from typing import Optional


def start_path(project_id: int, start_token: Optional[str] = None) -> str:
    """POST the options here to start an export (202 job | 409 {detail, job}); ``start_token``
    names the start (R1: a repeated POST gets the job the first one made)."""
    path = f"/api/projects/{project_id}/exports"
    return path if start_token is None else f"{path}?start_token={start_token}"


def job_path(job_id: str) -> str:
    """GET the job JSON here."""
    return f"/api/exports/{job_id}"


def cancel_path(job_id: str) -> str:
    """POST here to cancel (200 job | 409 {detail: "already downloaded", job})."""
    return f"/api/exports/{job_id}/cancel"


def download_path(job_id: str) -> str:
    """GET the archive here (R4)."""
    return f"/api/exports/{job_id}/download"


def projects_path() -> str:
    """GET the projects the user may see here."""
    return "/api/projects"


def project_path(project_id: int) -> str:
    """GET one project, with its images and object counts, here."""
    return f"/api/projects/{project_id}"


def history_path(project_id: int) -> str:
    """GET the user's recent exports of the project here, newest first."""
    return f"/api/projects/{project_id}/exports"


EVENTS_PATH = "/api/ws"
"""The WebSocket of the user's export events (R6)."""
