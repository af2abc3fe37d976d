"""How the page starts Python (issue 22): from the build's memory snapshot, served compressed
and cached for good, and, when the snapshot does not match, the full boot of before, with
``body[data-boot]`` saying which. Every other e2e test runs on the snapshot path too
(``conftest.wait_ready`` checks ``data-boot``)."""
from __future__ import annotations

import hashlib
import io
import re
import zipfile

from playwright.sync_api import expect

from e2e.conftest import reload_tab

SNAPSHOT = re.compile(r"/snapshot-[0-9a-f]{32}\.bin$")


def test_the_page_restores_the_snapshot_instead_of_loading_wheels_and_keeps_it_cached(user):
    responses = []
    user.context.on("response", lambda r: responses.append(r) if SNAPSHOT.search(r.url) else None)
    tab = user.open_tab()
    assert tab.page.locator("body").get_attribute("data-boot-reason") is None
    assert not any(u.endswith(".whl") or "/bytecode-" in u for u in tab.requests)
    # What the snapshot brings is not asked for again: its standard library zip and its
    # memory (requested once the instance exists) instead of Pyodide's zip and lock file.
    assert not any(u.endswith(("/python_stdlib.zip", "/pyodide-lock.json")) for u in tab.requests)
    assert len([u for u in tab.requests if re.search(r"/snapshot-[0-9a-f]{32}-stdlib\.zip$", u)]) == 1
    assert len([u for u in tab.requests if re.search(r"/snapshot-[0-9a-f]{32}-memory\.bin$", u)]) == 1
    (response,) = responses
    headers = response.headers
    assert headers["content-encoding"] == "zstd" and "immutable" in headers["cache-control"]
    assert "accept-encoding" in headers["vary"].lower()
    # The page's Python is the restored one: the app's modules were imported by the builder,
    # yet the page behaves (buttons, images) and the restored pydantic validates.
    expect(tab.page.locator("#export-button")).to_be_enabled()
    assert tab.page.evaluate("() => window.cellhubBoot.path") == "snapshot"
    assert tab.page.evaluate("() => window.cellhubBoot.snapshot") is None  # its ~40 MB released

    # A second visit restores it again, from the HTTP cache (its name is its sources' hash).
    reload_tab(tab)
    expect(tab.page.locator("#export-button")).to_be_enabled()


def test_a_snapshot_that_does_not_match_falls_back_to_the_full_boot_and_the_page_works(user, tmp_path):
    def other_pyodide(route):
        # The real snapshot, as if built by another Pyodide (same length, other version).
        real = route.fetch()
        body = real.body().replace(b'"pyodide":"314.0.7"', b'"pyodide":"314.0.6"', 1)
        assert body != real.body()
        headers = {k: v for k, v in real.headers.items() if k.lower() not in ("content-encoding", "content-length")}
        route.fulfill(status=200, body=body, headers=headers)

    user.context.route(SNAPSHOT, other_pyodide)
    user.server.api("POST", "/api/test/hooks", {"delay_per_checkpoint_ms": 15})
    tab = user.open_tab(boot="fallback")
    page = tab.page
    assert "314.0.6" in page.locator("body").get_attribute("data-boot-reason")
    assert any("memory snapshot not used" in w for w in tab.console_warnings)
    assert any(re.search(r"/static/wheels/pydantic_core-.*\.whl$", u) for u in tab.requests)
    assert any("/bytecode-" in u for u in tab.requests)

    page.click("#export-button")
    expect(page.locator("#export-status")).to_have_text("Downloaded.", timeout=60_000)
    job_id = page.locator("body").get_attribute("data-job-id")
    page.wait_for_timeout(1000)  # a second download would have started by now
    assert len(tab.downloads) == 1
    data = open(tab.downloads[0].path(), "rb").read()
    status, state = user.server.api("GET", f"/api/test/jobs/{job_id}")
    assert state["status"] == "completed" and hashlib.sha256(data).hexdigest() == state["sha256"]
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert "annotations/coco/annotations.json" in zf.namelist()
