"""The safety invariants over a ``World``'s history, written once: ``World.violations()``
and the model checker (``tests/core/checker/invariants.py``) both call these.

- I1 (C1) no download of a job starts in any tab after a cancel click for that job (a click
  made while the tab was still starting counts for the job that start made:
  ``World.cancel_clicks``);
- I2 (C4, R2) at most one download per job over all tabs, and no download the server
  refused unless a cancel was clicked for the job (the cancel may beat the download
  request to the server, which then answers 410);
- E0 nothing reached the store's error handler.

Each violation is a line starting with its code (``"I1: ..."``).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .world import World


def download_violations(world: "World") -> list[str]:
    """I1 and I2."""
    out: list[str] = []
    clicks = world.cancel_clicks()
    clicked = {job for _, _, job in clicks}
    per_job: dict[str, list] = {}
    for d in world.downloads:
        per_job.setdefault(d.job_id, []).append(d)
    for at, tab, job in clicks:
        for d in per_job.get(job, ()):
            if d.step >= at:
                out.append(f"I1: {job} download started in {d.tab} after a cancel click in {tab}")
    for job, ds in per_job.items():
        if len(ds) > 1:
            out.append(f"I2: {job} downloaded {len(ds)} times (tabs {', '.join(d.tab for d in ds)})")
        for d in ds:
            if d.server_status not in (None, 200) and job not in clicked:
                out.append(f"I2: {job} download in {d.tab} refused by the server ({d.server_status}) without a cancel")
    return out


def store_error_violations(world: "World") -> list[str]:
    """E0."""
    return [f"E0: store error in {where}: {exc!r}" for exc, where in world.errors]
