"""The walking skeleton in real Chromium against the real server: the page loads from the
server alone, an export downloads exactly one valid zip, and Cancel stops a running export."""
from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile

from playwright.sync_api import expect
from pycocotools.coco import COCO


def _project(user) -> dict:
    status, projects = user.api("GET", "/api/projects")
    assert status == 200
    status, project = user.api("GET", f"/api/projects/{projects[0]['id']}")
    assert status == 200
    return project


def test_page_loads_runtime_and_wheels_from_the_server_and_enables_export(user):
    tab = user.open_tab()
    page = tab.page
    expect(page.locator("#export-button")).to_be_enabled()
    project = _project(user)
    expect(page.locator("#image-grid li")).to_have_count(len(project["images"]))
    expect(page.locator("#project-name")).to_have_text(project["name"])
    urls = tab.requests
    assert any(u.endswith("pyodide.asm.wasm") for u in urls)
    # Booted from the memory snapshot (the fixture checks body[data-boot]): it brings the
    # wheels, so neither they nor the bytecode bundle are asked for.
    assert any(re.search(r"/snapshot-[0-9a-f]{32}\.bin$", u) for u in urls)
    assert not any(u.endswith(".whl") or "/bytecode-" in u for u in urls)
    assert any(re.search(r"/app-[0-9a-f]{16}\.zip$", u) for u in urls)
    # The user fixture fails the test if any request left the server's origin.
    assert all(u.startswith(user.server.base_url) or u.startswith(("data:", "blob:")) for u in urls)


def test_export_shows_progress_and_downloads_exactly_one_valid_zip(user, tmp_path):
    user.server.api("POST", "/api/test/hooks", {"delay_per_checkpoint_ms": 15})
    tab = user.open_tab()
    page = tab.page
    page.click("#export-button")
    expect(page.locator("#progress-block")).to_be_visible()
    expect(page.locator("#progress-label")).to_have_text(re.compile(r"^[1-9]\d?%$"), timeout=30_000)
    expect(page.locator("#export-status")).to_have_text("Downloaded.", timeout=60_000)
    job_id = page.locator("body").get_attribute("data-job-id")
    assert job_id
    page.wait_for_timeout(1000)  # a second download would have started by now
    assert len(tab.downloads) == 1
    path = tab.downloads[0].path()
    data = open(path, "rb").read()
    status, state = user.server.api("GET", f"/api/test/jobs/{job_id}")
    assert state["status"] == "completed" and state["delivered"] is True
    assert hashlib.sha256(data).hexdigest() == state["sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        (tmp_path / "annotations.json").write_bytes(zf.read("annotations/coco/annotations.json"))
    coco = COCO(str(tmp_path / "annotations.json"))
    project = _project(user)
    assert len(coco.getImgIds()) == len(project["images"])
    assert len(coco.getAnnIds()) == project["object_count"]


def test_cancel_while_running_stops_the_job_and_downloads_nothing(user):
    user.server.api("POST", "/api/test/hooks", {"delay_per_checkpoint_ms": 40})
    tab = user.open_tab()
    page = tab.page
    page.click("#export-button")
    expect(page.locator("body")).to_have_attribute("data-status", "running", timeout=30_000)
    job_id = page.locator("body").get_attribute("data-job-id")
    page.click("#cancel-button")
    expect(page.locator("#export-status")).to_have_text("Export cancelled.", timeout=30_000)
    status, state = user.server.api("GET", f"/api/test/jobs/{job_id}")
    assert state["status"] == "cancelled"
    page.wait_for_timeout(500)  # the worker reaches its next checkpoint and removes its file
    status, state = user.server.api("GET", f"/api/test/jobs/{job_id}")
    assert state["archive_exists"] is False and state["partial_exists"] is False
    assert tab.downloads == []
    project_id = page.locator("body").get_attribute("data-project-id")
    # C5: cancel clears the project's persisted job at once (per-job marks may stay).
    assert page.evaluate(f"() => localStorage.getItem('cellhub.export.v1.{project_id}')") is None
