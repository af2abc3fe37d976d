"""The export page as a researcher uses it, in real Chromium against the real server.

One tab (one page boot) serves most checks, in file order: keyboard-only export, options
validation, image selection, a YOLO + metrics export with its history entry and its
"Download again", Retry after a failed start, mounting/unmounting the export panel 50
times without leaking JS proxies, the 360 px layout, and the ended-session banner. The
sign-in page and a server that goes away and comes back get their own contexts.

The README's screenshots (``docs/screenshots/``) are taken along the way; they are written
there only with ``--update-screenshots`` (``./test e2e/test_page.py --update-screenshots``),
else to a temporary folder, so a test run changes no tracked file.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import expect

from e2e.conftest import UserSession, start_server, stop_server

ROOT = Path(__file__).resolve().parents[1]
README_SHOTS = ROOT / "docs" / "screenshots"
PIXEL_RANGE_MESSAGE = "Pixel size must be between 0.001 and 1000 µm/px."
LOCAL_NET_ERRORS = (r"net::ERR_CONNECTION_REFUSED", r"WebSocket connection to '.*' failed")

START_URL = re.compile(r".*/api/projects/\d+/exports(\?.*)?$")
"""The start request, with or without its ``start_token`` (R1)."""


@dataclass
class Researcher:
    """A user with one browser context and one booted tab, shared by this module's tests.
    ``allow(pattern)`` lets the current test expect a console error (network errors the
    test provokes on purpose); anything else fails the test."""

    session: UserSession
    tab: object
    password: str
    allowed: list[re.Pattern] = field(default_factory=list)

    @property
    def page(self):
        return self.tab.page

    def allow(self, *patterns: str) -> None:
        self.allowed += [re.compile(p) for p in patterns]


def _new_user(server) -> tuple[str, str]:
    username, password = f"r{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    status, body = server.api("POST", "/api/test/users", {"username": username, "password": password})
    assert status == 200, body
    return username, password


def _signed_in_context(browser, server, username: str, password: str):
    context = browser.new_context(accept_downloads=True)
    r = context.request.post(
        server.base_url + "/api/session",
        data=json.dumps({"username": username, "password": password}),
        headers={"Content-Type": "application/json", "X-Requested-With": "cellhub"},
    )
    assert r.ok, r.text()
    return context


@pytest.fixture(scope="module")
def shots(request, tmp_path_factory) -> Path:
    """Where screenshots go: the README's folder with ``--update-screenshots``, else a
    temporary folder."""
    if request.config.getoption("--update-screenshots"):
        README_SHOTS.mkdir(parents=True, exist_ok=True)
        return README_SHOTS
    return tmp_path_factory.mktemp("screenshots")


@pytest.fixture(scope="module")
def researcher(server, browser):
    username, password = _new_user(server)
    context = _signed_in_context(browser, server, username, password)
    session = UserSession(server, context, username)
    r = Researcher(session, session.open_tab("/"), password)
    yield r
    context.close()


@pytest.fixture
def page(researcher, server):
    """The shared tab, idle, with the server's test hooks reset; fails the test on console
    errors it did not ``allow`` and on requests that left the server's origin."""
    server.api("POST", "/api/test/hooks", {"hold_before_complete": False, "delay_per_checkpoint_ms": 0})
    researcher.allowed = []
    tab = researcher.tab
    errors_before, requests_before = len(tab.console_errors), len(tab.requests)
    if tab.page.locator("#dismiss-button").is_visible():
        tab.page.click("#dismiss-button")
    yield tab.page
    new_errors = tab.console_errors[errors_before:]
    unexpected = [e for e in new_errors if not any(p.search(e) for p in researcher.allowed)]
    assert not unexpected, f"console errors: {unexpected}"
    foreign = [u for u in tab.requests[requests_before:] if not u.startswith((server.base_url, "data:", "blob:"))]
    assert not foreign, f"requests left the server's origin: {foreign}"


def _project(session) -> dict:
    status, projects = session.api("GET", "/api/projects")
    assert status == 200
    status, project = session.api("GET", f"/api/projects/{projects[0]['id']}")
    assert status == 200
    return project


def _download_after(tab, before: int, timeout_s: float = 30.0):
    """The one download the page started after the tab had ``before`` of them: Playwright
    delivers the download event a little after the page's click, so wait for it."""
    deadline = time.monotonic() + timeout_s
    while len(tab.downloads) <= before and time.monotonic() < deadline:
        tab.page.wait_for_timeout(50)  # lets Playwright deliver the event
    assert len(tab.downloads) == before + 1, f"{len(tab.downloads) - before} downloads, expected 1"
    return tab.downloads[-1]


def _zip_names(download) -> tuple[list[str], bytes]:
    data = Path(download.path()).read_bytes()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return zf.namelist(), data


def _tab_until(page, element_id: str, limit: int = 40) -> int:
    """Press Tab until the element with ``element_id`` has focus; the number of presses."""
    for presses in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("() => document.activeElement && document.activeElement.id") == element_id:
            return presses
    raise AssertionError(f"#{element_id} not reached with {limit} Tab presses")


def _live_proxies(page) -> int:
    return int(page.evaluate("() => window.cellhubLiveProxies()"))


def test_keyboard_only_export_from_page_load(researcher, page):
    """Skip link, check boxes with Space, Enter on Export; focus lands on Dismiss after."""
    page.keyboard.press("Tab")
    assert page.evaluate("() => document.activeElement.className") == "skip-link"
    expect(page.locator(".skip-link")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate("() => document.activeElement.id") == "export-heading"
    _tab_until(page, "fmt-yolo", limit=5)
    page.keyboard.press("Space")
    _tab_until(page, "met-csv", limit=5)
    page.keyboard.press("Space")
    expect(page.locator("#fmt-yolo")).to_be_checked()
    expect(page.locator("#met-csv")).to_be_checked()
    presses = _tab_until(page, "export-button", limit=10)
    assert presses <= 6  # pixel size, two "include" boxes; the disabled overlay style is skipped
    before = len(researcher.tab.downloads)
    page.keyboard.press("Enter")
    expect(page.locator("#export-status")).to_have_text("Downloaded.", timeout=60_000)
    assert page.evaluate("() => document.activeElement.id") == "dismiss-button"
    names, _ = _zip_names(_download_after(researcher.tab, before))
    assert any(n.startswith("yolo/") for n in names)
    assert "metrics/metrics.csv" in names
    page.keyboard.press("Enter")
    expect(page.locator("#export-status")).to_have_text("Ready to export.")
    expect(page.locator("body")).to_have_attribute("data-status", "idle")


def test_the_page_paints_before_python_and_then_becomes_interactive(researcher, page, server):
    project = _project(researcher.session)
    status, html = server.api("GET", "/", cookies=researcher.session.cookies())
    assert status == 200
    # Server-side substitution: the project's name is in the markup, with a loading indicator.
    assert f'<h1 id="project-name">{project["name"]}</h1>' in html
    assert 'id="boot-indicator"' in html and 'aria-busy="true"' in html
    expect(page.locator("body")).to_have_attribute("data-ready", "true")
    expect(page.locator("#boot-indicator")).to_have_count(0)
    expect(page.locator("main")).not_to_have_attribute("aria-busy", "true")
    # Project picker: every project, the current one selected, a GET form to /?project=ID.
    status, projects = researcher.session.api("GET", "/api/projects")
    options = page.locator("#project-select option")
    expect(options).to_have_count(len(projects))
    assert options.first.get_attribute("value") == str(projects[0]["id"])
    expect(page.locator("#project-select")).to_have_value(str(project["id"]))
    assert page.eval_on_selector("#project-picker", "f => [f.method, new URL(f.action).pathname]") == ["get", "/"]
    # The pixel size comes from the project's metadata.
    expect(page.locator("#pixel-size")).to_have_value(f"{project['pixel_size_um']:g}")
    # Thumbnails come from the thumbnail route, one per image.
    srcs = page.eval_on_selector_all("#image-grid img", "imgs => imgs.map(i => i.getAttribute('src'))")
    assert srcs == [f"/api/projects/{project['id']}/images/{im['id']}/thumbnail" for im in project["images"]]
    # Every form control has a label; the status line is a polite live region.
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea')]
              .filter(e => e.type !== 'hidden' && !(e.labels && e.labels.length) && !e.getAttribute('aria-label'))
              .map(e => e.id || e.name)""")
    assert unlabelled == []
    status_region = page.locator("#export-status")
    assert status_region.get_attribute("role") == "status" and status_region.get_attribute("aria-live") == "polite"


def _boot_manifest(html: str) -> dict:
    m = re.search(r"const boot = (\{.*?\});", html)
    assert m, "index.html has no boot manifest"
    return json.loads(m.group(1))


def test_the_page_boots_from_precompiled_bytecode_and_asks_nothing_twice(server, browser):
    """Once the server has built the bytecode bundle (Node.js runs the vendored Pyodide in
    the background after the first page), the page imports its modules from it when it
    cannot use the memory snapshot (here: an empty answer), and nothing it fetches (project,
    wheels, bundle) is fetched twice."""
    username, password = _new_user(server)
    context = _signed_in_context(browser, server, username, password)
    try:
        session = UserSession(server, context, username)
        deadline = time.monotonic() + 240
        while True:
            status, html = server.api("GET", "/", cookies=session.cookies())
            assert status == 200
            manifest = _boot_manifest(html)
            if manifest["bytecode"] or time.monotonic() > deadline:
                break
            time.sleep(1)
        assert manifest["bytecode"], "no bytecode bundle was built (is Node.js there?)"
        bundle = httpx.get(server.base_url + manifest["bytecode"])
        assert bundle.status_code == 200 and "immutable" in bundle.headers["cache-control"]
        assert bundle.content.startswith(b"cellhub-bytecode-")  # httpx undid the gzip encoding
        assert httpx.get(server.base_url + "/bytecode-0123.bin").status_code == 404

        context.route(re.compile(r"/snapshot-[0-9a-f]{32}\.bin$"), lambda route: route.fulfill(status=200, body=b""))
        tab = session.open_tab("/", boot="fallback")
        page = tab.page
        expect(page.locator("#export-button")).to_be_enabled()
        assert int(page.locator("body").get_attribute("data-bytecode")) > 50
        marks = page.evaluate("() => performance.getEntriesByType('mark').map(m => m.name)")
        assert [m for m in marks if m.startswith("cellhub:")] == [
            "cellhub:boot", "cellhub:wheels", "cellhub:imports", "cellhub:ready"]
        # Each went over the network once: the project and the bundle were taken from the
        # early requests, the wheels came to loadPackage from the HTTP cache.
        transfers = page.evaluate("""() => performance.getEntriesByType('resource')
            .map(r => [new URL(r.name).pathname, r.transferSize])""")
        for url in [manifest["project"], manifest["bytecode"], *manifest["wheels"]]:
            assert len([size for path, size in transfers if path == url and size > 0]) == 1, (url, transfers)
        assert [w for w in tab.console_warnings if "memory snapshot not used" not in w] == []
        assert not tab.unexpected_errors()
        page.click("#export-button")
        expect(page.locator("#export-status")).to_have_text("Downloaded.", timeout=60_000)
    finally:
        context.close()


def test_pixel_size_out_of_range_is_refused_next_to_the_field(researcher, page, server):
    field, error, export = page.locator("#pixel-size"), page.locator("#error-pixel-size"), page.locator("#export-button")
    for bad in ("0", "5000"):
        field.fill(bad)
        expect(error).to_have_text(PIXEL_RANGE_MESSAGE)
        expect(field).to_have_attribute("aria-invalid", "true")
        expect(export).to_be_disabled()
        expect(page.locator("#export-blocker")).to_have_text(PIXEL_RANGE_MESSAGE)
    field.fill("abc")
    expect(error).to_have_text("Pixel size must be a number.")
    field.fill("0,65")  # a decimal comma is read as a point
    expect(error).to_be_hidden()
    expect(export).to_be_enabled()
    field.fill("")
    expect(error).to_be_hidden()
    expect(field).not_to_have_attribute("aria-invalid", "true")
    expect(export).to_be_enabled()
    # The server validates with the same model and refuses the same values.
    pid = page.locator("body").get_attribute("data-project-id")
    status, body = researcher.session.api("POST", f"/api/projects/{pid}/exports", {"pixel_size_um": 5000})
    assert status == 422 and "pixel_size_um" in json.dumps(body)


def test_overlay_style_is_validated_only_when_overlays_are_included(researcher, page):
    page.check("#include-visualizations")
    page.fill("#stroke-width", "50")
    expect(page.locator("#error-stroke-width")).to_have_text("Stroke width must be between 1 and 20 px.")
    expect(page.locator("#export-button")).to_be_disabled()
    page.uncheck("#include-visualizations")
    expect(page.locator("#stroke-width")).to_be_disabled()  # the whole "Overlay style" fieldset is
    expect(page.locator("#error-stroke-width")).to_be_hidden()
    expect(page.locator("#export-button")).to_be_enabled()
    page.check("#include-visualizations")
    page.fill("#stroke-width", "3")
    expect(page.locator("#export-button")).to_be_enabled()
    page.uncheck("#include-visualizations")


def test_select_none_disables_export_and_the_counts_follow_the_selection(researcher, page):
    project = _project(researcher.session)
    total, objects = len(project["images"]), project["object_count"]
    summary = page.locator("#image-summary")
    expect(summary).to_have_text(f"{total} of {total} images selected · {objects} objects")
    page.click("#select-none")
    expect(summary).to_have_text(f"0 of {total} images selected · 0 objects")
    expect(page.locator("#export-button")).to_be_disabled()
    expect(page.locator("#image-error")).to_have_text("Select at least one image to export.")
    first = project["images"][0]
    page.check(f"#image-{first['id']}")
    expect(summary).to_have_text(f"1 of {total} images selected · {first['object_count']} objects")
    expect(page.locator("#export-button")).to_be_enabled()
    page.click("#select-all")
    expect(summary).to_have_text(f"{total} of {total} images selected · {objects} objects")


def test_yolo_and_metrics_export_shows_progress_then_history_offers_download_again(researcher, page, server, shots):
    project = _project(researcher.session)
    keep = project["images"][:-2]  # two images left out
    for image in project["images"][-2:]:
        page.uncheck(f"#image-{image['id']}")
    page.uncheck("#fmt-coco")
    page.check("#fmt-yolo")
    page.check("#met-csv")
    page.check("#met-json")
    page.fill("#pixel-size", "0.5")
    server.api("POST", "/api/test/hooks", {"delay_per_checkpoint_ms": 100})
    downloads_before = len(researcher.tab.downloads)
    page.click("#export-button")
    expect(page.locator("#export-status")).to_have_text("Exporting…", timeout=30_000)
    expect(page.locator("#progress-label")).to_have_text(re.compile(r"^([1-8]\d)%$"), timeout=30_000)
    expect(page.locator("#progress-stage")).not_to_be_empty()
    expect(page.locator("#progress-elapsed")).to_have_text(re.compile(r"^Elapsed \d+ s$"))
    expect(page.locator("#cancel-button")).to_be_visible()
    # The time left shows once there is enough progress to extrapolate from.
    expect(page.locator("#progress-eta")).to_have_text(re.compile(r"^(About \d+ s left|A few seconds left|Almost done)$"), timeout=30_000)
    page.screenshot(path=str(shots / "export-running.png"), full_page=True)
    expect(page.locator("#export-status")).to_have_text("Downloaded.", timeout=90_000)
    job_id = page.locator("body").get_attribute("data-job-id")
    names, first_bytes = _zip_names(_download_after(researcher.tab, downloads_before))
    assert "yolo/data.yaml" in names
    labels = [n for n in names if n.startswith("yolo/labels/") and n.endswith(".txt")]
    assert len(labels) == len(keep)
    assert {"metrics/metrics.csv", "metrics/metrics.json"} <= set(names)
    assert not any(n.startswith("annotations/coco/") for n in names)
    # The finished export heads the history, with its size and a "Download again" link.
    entry = page.locator(f'#history-list li[data-job-id="{job_id}"]')
    expect(entry).to_have_attribute("data-status", "completed", timeout=15_000)
    expect(page.locator("#history-list li").first).to_have_attribute("data-job-id", job_id)
    expect(entry.locator(".badge")).to_have_text("Ready")
    expect(entry.locator(".history-what")).to_contain_text(f"YOLO · metrics CSV, JSON · {len(keep)} images · 0.5 µm/px")
    expect(entry.locator(".history-size")).to_have_text(re.compile(r"^\d+(\.\d)? (kB|MB)$"))
    expect(page.locator("#progress-summary")).to_have_text(re.compile(r"^Archive \d+(\.\d)? (kB|MB), made in \d+ s\.$"))
    again = entry.get_by_role("link", name=re.compile("^Download again"))
    expect(again).to_be_visible()
    page.screenshot(path=str(shots / "export-done.png"), full_page=True)
    with page.expect_download() as info:
        again.click()
    second = info.value.path()
    assert hashlib.sha256(Path(second).read_bytes()).hexdigest() == hashlib.sha256(first_bytes).hexdigest()
    page.click("#dismiss-button")
    page.click("#select-all")


def test_retry_after_a_failed_start_uses_the_same_options(researcher, page):
    researcher.allow(r"status of 400")
    page.uncheck("#fmt-yolo")
    page.uncheck("#met-csv")
    page.uncheck("#met-json")
    page.check("#fmt-json")
    page.fill("#pixel-size", "")

    def refuse(route):
        if route.request.method == "POST":
            route.fulfill(status=400, content_type="application/json",
                          body=json.dumps({"detail": "the export queue is full, try again in a minute"}))
        else:
            route.continue_()

    page.route(START_URL, refuse)
    page.click("#export-button")
    expect(page.locator("#export-status")).to_have_text(
        "Export failed: could not start the export: the export queue is full, try again in a minute")
    expect(page.locator("body")).to_have_attribute("data-status", "failed")
    retry = page.locator("#retry-button")
    expect(retry).to_be_visible()
    page.unroute(START_URL, refuse)
    # A changed form does not change what Retry sends: it repeats the failed export.
    page.check("#fmt-coco")
    before = len(researcher.tab.downloads)
    retry.click()
    expect(page.locator("#export-status")).to_have_text("Downloaded.", timeout=60_000)
    names, _ = _zip_names(_download_after(researcher.tab, before))
    assert "annotations/json/project.json" in names
    assert not any(n.startswith("annotations/coco/") for n in names)
    page.click("#dismiss-button")
    page.uncheck("#fmt-json")


def test_unmounting_the_export_panel_releases_every_proxy(researcher, page):
    toggle = page.locator("#panel-toggle")
    page.fill("#pixel-size", "0.25")
    expect(page.locator("body")).to_have_attribute("data-status", "idle")
    baseline = _live_proxies(page)
    toggle.click()
    expect(page.locator("#export-panel")).to_have_count(0)
    expect(toggle).to_have_attribute("aria-expanded", "false")
    hidden = _live_proxies(page)
    assert hidden < baseline  # the panel's listeners are proxies, and they are gone
    toggle.click()
    expect(page.locator("#export-panel")).to_have_count(1)
    assert _live_proxies(page) == baseline
    page.evaluate("() => { const t = document.getElementById('panel-toggle'); for (let i = 0; i < 100; i++) t.click(); }")
    expect(page.locator("#export-panel")).to_have_count(1)
    assert _live_proxies(page) == baseline
    # The form kept its values across the remounts, and the panel still works.
    expect(page.locator("#pixel-size")).to_have_value("0.25")
    page.fill("#pixel-size", "0")
    expect(page.locator("#error-pixel-size")).to_have_text(PIXEL_RANGE_MESSAGE)
    page.fill("#pixel-size", "")
    assert not [e for e in researcher.tab.console_errors if "borrowed proxy" in e.lower()]


def test_the_page_fits_a_360_px_wide_screen(researcher, page, shots):
    page.set_viewport_size({"width": 360, "height": 740})
    try:
        page.wait_for_timeout(200)
        assert page.evaluate("() => document.documentElement.scrollWidth") <= 360
        for selector in ("#project-select", "#select-none", "#image-grid", "#pixel-size", "#export-button",
                         "#panel-toggle", "#history-refresh", "#sign-out"):
            box = page.locator(selector).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, (selector, box)
        columns = page.evaluate(
            "() => getComputedStyle(document.getElementById('image-grid')).gridTemplateColumns.split(' ').length")
        assert columns == 3
        page.evaluate("() => document.activeElement && document.activeElement.blur()")
        page.screenshot(path=str(shots / "export-360px.png"), full_page=True)
    finally:
        page.set_viewport_size({"width": 1280, "height": 720})


def test_an_ended_session_says_so_and_leads_back_to_the_project(researcher, page, server):
    researcher.allow(r"status of 401")
    pid = page.locator("body").get_attribute("data-project-id")
    page.evaluate("() => fetch('/api/session', {method: 'DELETE', headers: {'X-Requested-With': 'cellhub'}})")
    page.click("#history-refresh")
    expect(page.locator("body")).to_have_attribute("data-connection", "signed-out")
    banner = page.locator("#connection-banner")
    expect(banner).to_contain_text("Your session has ended.")
    link = banner.get_by_role("link", name="Sign in again")
    link.click()
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    expect(page.locator("#signin-context")).to_contain_text("Your session has ended")
    page.fill("#username", researcher.session.username)
    page.fill("#password", researcher.password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{server.base_url}/?project={pid}", timeout=20_000)  # argon2 takes a moment
    expect(page.locator("#project-name")).to_have_text(_project(researcher.session)["name"])


def test_sign_in_page_refuses_a_wrong_password_and_keeps_the_destination_on_this_site(server, browser):
    username, password = _new_user(server)
    context = browser.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.goto(server.base_url + "/")
        expect(page).to_have_url(re.compile(r"/signin"))
        expect(page.locator("#username")).to_be_focused()
        page.click("#signin-button")
        expect(page.locator("#signin-error")).to_have_text("Enter your user name.")
        page.fill("#username", username)
        page.fill("#password", "not the password")
        page.click("#signin-button")
        expect(page.locator("#signin-error")).to_have_text("Wrong user name or password.")
        page.goto(server.base_url + "/signin?next=//example.org/steal")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("#signin-button")
        # argon2 and then the export page's own request: seconds on a loaded 2-core machine.
        expect(page).to_have_url(server.base_url + "/", timeout=20_000)
    finally:
        context.close()
    assert [e for e in errors if "status of 401" not in e] == []


def test_the_project_picker_opens_the_project_chosen(browser, tmp_path):
    srv = start_server(tmp_path / "data")
    context = None
    try:
        username, password = _new_user(srv)
        context = _signed_in_context(browser, srv, username, password)
        data = ROOT.parent / "shared" / "data" / "cells" / "stardist_dsb2018" / "tests" / "data"
        r = context.request.post(srv.base_url + "/api/projects/import", headers={"X-Requested-With": "cellhub"},
                                 multipart={"format": "labels", "name": "Second project",
                                            "images": {"name": "img2d.tif", "mimeType": "image/tiff",
                                                       "buffer": (data / "img2d.tif").read_bytes()},
                                            "masks": {"name": "img2d.tif", "mimeType": "image/tiff",
                                                      "buffer": (data / "mask2d.tif").read_bytes()}})
        assert r.status == 201, r.text()
        second = r.json()["project_id"]
        tab = UserSession(srv, context, username).open_tab("/")
        page = tab.page
        first = int(tab.project_id())
        assert first != second
        page.select_option("#project-select", str(second))
        expect(page.locator("#project-open")).to_be_enabled()
        page.click("#project-open")
        expect(page).to_have_url(re.compile(rf"/\?project={second}$"))
        expect(page.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
        expect(page.locator("body")).to_have_attribute("data-project-id", str(second))
        expect(page.locator("#project-name")).to_have_text("Second project")
        expect(page.locator("#project-select")).to_have_value(str(second))
    finally:
        if context is not None:
            context.close()
        stop_server(srv)


def test_server_unreachable_is_shown_and_the_page_recovers_when_it_returns(browser, tmp_path):
    srv = start_server(tmp_path / "data")
    context = None
    try:
        username, password = _new_user(srv)
        srv.api("POST", "/api/test/hooks", {"delay_per_checkpoint_ms": 0})
        context = _signed_in_context(browser, srv, username, password)
        session = UserSession(srv, context, username)
        status, projects = session.api("GET", "/api/projects")
        pid = projects[-1]["id"]
        tab = session.open_tab(f"/?project={pid}")
        page = tab.page
        expect(page.locator("body")).to_have_attribute("data-project-id", str(pid))
        expect(page.locator("#project-select")).to_have_value(str(pid))
        expect(page.locator("body")).to_have_attribute("data-connection", "online")
        expect(page.locator("#user-name")).to_have_text(username)  # the header has loaded
        errors_before = len(tab.console_errors)

        port = int(srv.base_url.rsplit(":", 1)[1])
        stop_server(srv)
        banner = page.locator("#connection-banner")
        expect(banner).to_be_visible(timeout=20_000)
        expect(page.locator("body")).to_have_attribute("data-connection", "offline")
        expect(banner).to_contain_text("The server cannot be reached")
        expect(banner.get_by_role("button", name="Try again now")).to_be_visible()

        srv = start_server(tmp_path / "data", port=port)
        expect(banner).to_be_hidden(timeout=30_000)
        expect(page.locator("body")).to_have_attribute("data-connection", "online")
        page.click("#export-button")
        expect(page.locator("#export-status")).to_have_text("Downloaded.", timeout=60_000)
        outage_errors = tab.console_errors[errors_before:]
        assert [e for e in outage_errors if not any(re.search(p, e) for p in LOCAL_NET_ERRORS)] == []
        assert tab.console_errors[:errors_before] == []

        page.click("#sign-out")
        expect(page).to_have_url(re.compile(r"/signin\?signed_out=1$"))
        expect(page.locator("#signin-message")).to_have_text("You are signed out.")
    finally:
        if context is not None:
            context.close()
        stop_server(srv)
