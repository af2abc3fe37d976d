"""The safety invariants over a ``World``'s history, written once: ``World.violations()``
and the model checker (``tests/core/checker/invariants.py``) both call these.

- I1 (C1) no download of a job starts in any tab of a browser after a cancel click for that
  job in that browser (a click made while the tab was still starting counts for the job
  that start made: ``World.cancel_clicks``). A cancel clicked in another browser reaches
  this one only through the server: R2 refuses a download it meets first (410, allowed by
  I2), or the cancel gets 409 "already downloaded" (I7 keeps the clicking tab truthful);
- I2 (C4, R2) a browser downloads a job once: it hands the job to the browser again only
  after one of its tabs showed that the previous download did not complete (C9: the
  ``undelivered`` mark was written in between); and no download the server refused unless
  a cancel was clicked for the job (the cancel may beat the download request to the server,
  which then answers 410);
- I9 (C10) no browser downloads a job started in another browser (or by no browser)
  unless the user clicked Download for it in a tab of that browser first;
- I10 (C9) a tab shows a job downloaded only if the server recorded its delivery;
- I12 (issue 18) a browser's project record is never written again with nothing a reload
  needs changed (the same job, status and delivered flag): progress is not persisted, and
  of the tabs that hear one event only the first writes;
- E0 nothing reached the store's error handler.

Each violation is a line starting with its code (``"I1: ..."``).
"""
from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Optional

from app.identity import token_browser
from app.persistence import mark_key

if TYPE_CHECKING:
    from .world import World

RECORD_KEY = re.compile(r"cellhub\.export\.v1\.\d+")


def download_violations(world: "World") -> list[str]:
    """I1, I2 and I9."""
    out: list[str] = []
    clicks = world.cancel_clicks()
    clicked = {job for _, _, job in clicks}
    for at, tab, job in clicks:
        out += [f"I1: {job} download started in {d.tab} after a cancel click in {tab}"
                for d in world.downloads if d.job_id == job and d.step >= at
                and d.browser == world.tab_browser.get(tab)]
    out += _repeated_downloads(world)
    out += [f"I2: {d.job_id} download in {d.tab} refused by the server ({d.server_status}) without a cancel"
            for d in world.downloads if d.server_status not in (None, 200) and d.job_id not in clicked]
    return out + _unasked_downloads(world)


def _repeated_downloads(world: "World") -> list[str]:
    out = []
    for name, browser in world.browsers.items():
        indexed = [(i, d) for i, d in enumerate(world.downloads) if d.browser == name]
        for job in sorted({d.job_id for _, d in indexed}):
            mine = [(i, d) for i, d in indexed if d.job_id == job]
            failures = [count for count, _, key, value in browser.storage.writes
                        if key == mark_key("undelivered", job) and value is not None]
            for (before, first), (after, second) in zip(mine, mine[1:]):
                if not any(before < count <= after for count in failures):
                    out.append(f"I2: {job} downloaded again in browser {name} (tabs {first.tab}, {second.tab}) "
                               f"with no failed download shown in between")
    return out


def _unasked_downloads(world: "World") -> list[str]:
    out = []
    for d in world.downloads:
        job = world.server.jobs.get(d.job_id)
        if job is None or token_browser(job.start_token) == d.browser:
            continue
        asked = any(kind == "download" and job_id == d.job_id and at < d.step
                    and world.tab_browser.get(tab) == d.browser
                    for at, tab, kind, job_id, _ in world.user_actions)
        if not asked:
            out.append(f"I9: {d.job_id} (started in {token_browser(job.start_token)}) downloaded unasked "
                       f"in browser {d.browser} by {d.tab}")
    return out


def display_violations(world: "World") -> list[str]:
    """I10 over the open tabs."""
    out = []
    for tab in world.tabs.values():
        if tab.closed or tab.status != "downloaded" or tab.job is None:
            continue
        job = world.server.jobs.get(tab.job.id)
        if job is None or not job.delivered:
            out.append(f"I10: {tab.id} shows {tab.job.id} downloaded but the server has not recorded its delivery")
    return out


def storage_violations(world: "World") -> list[str]:
    """I12 over every browser's storage writes."""
    out = []
    for name, browser in world.browsers.items():
        last: dict[str, Optional[tuple]] = {}
        for _, tab, key, value in browser.storage.writes:
            if not RECORD_KEY.fullmatch(key):
                continue
            now = _record_facts(value)
            if now is not None and last.get(key) == now:
                out.append(f"I12: {tab} rewrote the record of {now[0]} in browser {name} with nothing new "
                           f"({now[1]}, delivered={now[2]})")
            last[key] = now
    return out


def _record_facts(value: Optional[str]) -> Optional[tuple]:
    if value is None:
        return None
    try:
        job = json.loads(value)["job"]
        return job["id"], job["status"], job["delivered"]
    except (ValueError, KeyError, TypeError):
        return None


def store_error_violations(world: "World") -> list[str]:
    """E0."""
    return [f"E0: store error in {where}: {exc!r}" for exc, where in world.errors]
