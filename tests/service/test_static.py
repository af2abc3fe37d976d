"""The page's runtime is served by the server itself, with cache headers that let a second
visit skip every versioned asset."""
from __future__ import annotations

import re

import httpx
import pytest

from tests.service.conftest import Live


def test_versioned_assets_are_immutable_and_the_app_zip_is_content_addressed(live: Live):
    client = httpx.Client(base_url=live.base_url)
    config = client.get("/pyscript.toml")
    assert config.status_code == 200 and config.headers["cache-control"] == "no-cache"
    m = re.search(r'"/(app-[0-9a-f]{16}\.zip)" = "\./app/\*"', config.text)
    assert m, config.text
    zipped = client.get("/" + m.group(1))
    assert zipped.status_code == 200 and "immutable" in zipped.headers["cache-control"]
    assert client.get("/app-0000000000000000.zip").status_code == 404
    interpreter = re.search(r'interpreter = "([^"]+)"', config.text).group(1)
    boot = client.get(interpreter)  # the boot module (server/routes/snapshot.py) wraps the vendored one
    assert boot.status_code == 200 and boot.headers["cache-control"] == "no-cache"
    vendored = re.search(r'export \* from "([^"]+)"', boot.text).group(1)
    wasm = client.get(vendored.replace("pyodide.mjs", "pyodide.asm.wasm"))
    assert wasm.status_code == 200 and "immutable" in wasm.headers["cache-control"]
    wheels = client.get("/static/wheels/wheels.json")
    assert wheels.headers["cache-control"] == "no-cache"
    wheel = client.get("/static/wheels/" + wheels.json()[0])
    assert wheel.status_code == 200 and "immutable" in wheel.headers["cache-control"]


def test_the_page_needs_a_session_and_shows_the_project_name_before_python(live: Live):
    anon = httpx.Client(base_url=live.base_url)
    r = anon.get("/", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/signin"
    r = anon.get(f"/?project={live.project_id}", follow_redirects=False)
    assert r.headers["location"] == f"/signin?next=%2F%3Fproject%3D{live.project_id}"
    alice = live.new_user()
    page = alice.http.get("/")
    assert page.status_code == 200
    assert "Demo: synthetic nuclei" in page.text and "{{" not in page.text
    assert "Synthetic data" in page.text


def test_the_one_time_login_link_works_once(live: Live):
    from server import accounts, auth

    db = live.app.state.db
    token = auth.new_login_token(db, accounts.ensure_user(db, auth.DEFAULT_USER), live.app.state.services.boot_id)
    client = httpx.Client(base_url=live.base_url)
    first = client.get(f"/login?token={token}", follow_redirects=False)
    assert first.status_code == 303
    cookie = first.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("samesite", "SameSite")
    assert client.get("/api/projects").status_code == 200
    assert httpx.get(f"{live.base_url}/login?token={token}").status_code == 403


@pytest.mark.parametrize("asked", ["999999", "abc", "99999999999999999999999"])
def test_a_project_that_is_not_there_gets_a_page_that_says_so(live: Live, asked):
    """Not the first project passed off as the one asked for, and not a JSON error: a page
    naming what was asked for, with links to the projects there are."""
    alice = live.new_user()
    page = alice.http.get(f"/?project={asked}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert f"No project {asked}" in page.text
    assert f'href="/?project={live.project_id}"' in page.text and "Demo: synthetic nuclei" in page.text
    assert 'id="export-button"' not in page.text
    assert alice.http.get(f"/?project={live.project_id}").status_code == 200
