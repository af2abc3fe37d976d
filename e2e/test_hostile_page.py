"""The browser's side of issue 16: the watcher that fails the suite on any Content-Security-
Policy violation really sees one, the page cannot be framed, ``next`` cannot lead off the
site however the URL parser reads it, and a throttled sign-in says how long to wait."""
from __future__ import annotations

import json
import re
import uuid

from playwright.sync_api import expect

from e2e.conftest import CSP_VIOLATIONS, start_server, stop_server


def _new_user(server) -> tuple[str, str]:
    username, password = f"h{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    status, body = server.api("POST", "/api/test/users", {"username": username, "password": password})
    assert status == 200, body
    return username, password


def test_an_inline_script_without_the_nonce_is_refused_and_the_watcher_sees_it(server, browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        response = page.goto(server.base_url + "/signin")
        assert "'unsafe-inline'" not in response.headers["content-security-policy"]
        page.evaluate("""() => { const s = document.createElement('script');
                                 s.textContent = 'window.injected = true'; document.head.appendChild(s); }""")
        page.wait_for_function("() => true")
        expect(page.locator("#username")).to_be_visible()
        assert page.evaluate("() => window.injected === undefined")
        page.wait_for_timeout(200)
        seen = [v for v in CSP_VIOLATIONS if "script-src" in v and "inline" in v]
        assert seen, CSP_VIOLATIONS
    finally:
        context.close()
    CSP_VIOLATIONS.clear()  # expected here; any other test fails on one


def test_the_hub_cannot_be_framed(server, browser):
    context = browser.new_context()
    try:
        page = context.new_page()
        refused: list[str] = []
        page.on("console", lambda m: refused.append(m.text) if "frame-ancestors" in m.text else None)
        page.set_content(f'<iframe id="f" src="{server.base_url}/signin"></iframe>')
        page.wait_for_timeout(1500)
        frame = page.frame_locator("#f")
        assert frame.locator("#username").count() == 0
        assert refused, "Chromium did not report the refused frame"
    finally:
        context.close()


def test_a_next_with_a_tab_or_slashes_stays_on_the_site(server, browser):
    username, password = _new_user(server)
    context = browser.new_context()
    try:
        page = context.new_page()
        for raw in ("/%09/evil.example/x", "/%5Cevil.example", "//evil.example", "https://evil.example/"):
            page.goto(f"{server.base_url}/signin?next={raw}")
            page.fill("#username", username)
            page.fill("#password", password)
            page.click("#signin-button")
            expect(page).to_have_url(server.base_url + "/", timeout=30_000)
            page.evaluate("() => fetch('/api/session', {method: 'DELETE', headers: {'X-Requested-With': 'cellhub'}})")
        page.goto(f"{server.base_url}/signin?next=/%3Fproject%3D1")
        page.fill("#username", username)
        page.fill("#password", password)
        page.click("#signin-button")
        expect(page).to_have_url(server.base_url + "/?project=1", timeout=30_000)
    finally:
        context.close()


def test_a_throttled_sign_in_says_how_long_to_wait_then_works(browser, tmp_path):
    srv = start_server(tmp_path / "data")  # its own server: the throttle counts this address
    context = browser.new_context()
    try:
        username, password = _new_user(srv)
        page = context.new_page()
        page.goto(srv.base_url + "/signin")
        page.fill("#username", username)
        for k in range(5):
            page.fill("#password", f"wrong {k}")
            page.click("#signin-button")
            expect(page.locator("#signin-error")).to_have_text("Wrong user name or password.", timeout=20_000)
            page.evaluate("() => { document.getElementById('signin-error').textContent = ''; }")
        page.fill("#password", password)
        page.click("#signin-button")
        expect(page.locator("#signin-error")).to_have_text(
            re.compile(r"Too many sign-in attempts\. Try again in \d+ seconds\."), timeout=20_000)
        page.wait_for_timeout(1200)
        page.click("#signin-button")
        expect(page).to_have_url(srv.base_url + "/", timeout=30_000)
        r = context.request.get(srv.base_url + "/api/session")
        assert r.ok and json.loads(r.text())["username"] == username
    finally:
        context.close()
        stop_server(srv)
