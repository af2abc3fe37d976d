"""Headers on every response (issue 16, item 6) and no open doors (item 9): a CSP with a
per-response nonce and without 'unsafe-inline', nosniff, Referrer-Policy, frame-ancestors,
no-store on API JSON; no test page, test route or CDN-backed docs in the product; the API
schema only for a signed-in user."""
from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from server import auth
from tests.service.conftest import Live, start_live

ROOT = Path(__file__).resolve().parents[2]


def _directives(response: httpx.Response) -> dict[str, list[str]]:
    csp = response.headers["content-security-policy"]
    out = {}
    for part in csp.split(";"):
        name, *values = part.split()
        out[name] = values
    return out


def _check_headers(response: httpx.Response) -> None:
    where = (response.request.url.path, response.status_code)
    assert response.headers.get("x-content-type-options") == "nosniff", where
    assert response.headers.get("referrer-policy") == "same-origin", where
    d = _directives(response)
    assert d["frame-ancestors"] == ["'none'"] and d["object-src"] == ["'none'"], where
    assert d["default-src"] == ["'self'"] and d["base-uri"] == ["'none'"], where
    script = d["script-src"]
    assert "'self'" in script and "'wasm-unsafe-eval'" in script and "'unsafe-inline'" not in script, where
    assert len([s for s in script if s.startswith("'nonce-")]) == 1, where
    assert not any("unsafe-inline" in v for values in d.values() for v in values), where


def test_every_answer_carries_the_security_headers(live: Live):
    alice = live.new_user()
    anon = httpx.Client(base_url=live.base_url)
    pid = live.project_id
    answers = [
        alice.http.get("/"), anon.get("/signin"), anon.get("/", follow_redirects=False),
        alice.http.get("/api/projects"), alice.http.get(f"/api/projects/{pid}"), anon.get("/api/projects"),
        alice.http.get("/api/projects/999999"), alice.http.get("/no/such/path"),
        alice.http.get("/static/app.css"), alice.http.get("/pyscript.toml"), alice.http.get("/app.zip"),
        alice.http.get(f"/api/projects/{pid}/images/1/thumbnail"), alice.http.get("/?project=424242"),
        anon.get("/login?token=nope"), alice.http.get("/api/projects", headers={"Host": "evil.example"}),
        alice.http.post(f"/api/projects/{pid}/exports", content=b"x" * (2 * 1024 * 1024),
                        headers={"Content-Type": "application/json"}),
        alice.http.post(f"/api/projects/{pid}/exports", json={"annotation_formats": ["nope"]}),
    ]
    for r in answers:
        _check_headers(r)
    for r in answers:
        if r.headers.get("content-type", "").startswith("application/json"):
            assert r.headers["cache-control"] == "no-store", (r.request.url.path, r.headers["cache-control"])
    assert {r.status_code for r in answers} >= {200, 303, 400, 401, 403, 404, 413, 422}


def test_the_page_s_inline_scripts_carry_this_answer_s_nonce_and_no_other_script_does(live: Live):
    alice = live.new_user()
    db = live.app.state.db
    db.execute("UPDATE projects SET name = ? WHERE id = ?",
               ('{{CSP_NONCE}}<script nonce="{{CSP_NONCE}}">alert(1)</script>', live.project_id))
    first, second = alice.http.get("/"), alice.http.get("/")
    nonces = []
    for page in (first, second):
        (nonce,) = [s[7:-1] for s in _directives(page)["script-src"] if s.startswith("'nonce-")]
        nonces.append(nonce)
        tags = re.findall(r"<script\b[^>]*>", page.text)
        inline = [t for t in tags if "src=" not in t and 'type="py"' not in t]
        assert inline and all(f'nonce="{nonce}"' in t for t in inline), tags
        assert page.text.count(nonce) == len(inline)  # the project name did not get it
        assert "&lt;script nonce=&quot;{{CSP_NONCE}}&quot;&gt;" in page.text
    assert nonces[0] != nonces[1] and len(nonces[0]) >= 22
    # Only the pages that run PyScript allow eval (its core needs it); the sign-in page does not.
    assert "'unsafe-eval'" in _directives(first)["script-src"]
    assert "'unsafe-eval'" not in _directives(httpx.get(live.base_url + "/signin"))["script-src"]
    ws = _directives(first)["connect-src"]
    assert ws == ["'self'", live.base_url.replace("http://", "ws://")]


def test_every_inline_script_of_the_page_template_asks_for_the_nonce():
    """A template change that adds an inline script without the nonce fails here, before the
    browser refuses to run it (e2e)."""
    for page in ("index.html", "static/signin.html"):
        text = (ROOT / page).read_text(encoding="utf-8")
        for tag in re.findall(r"<script\b[^>]*>", text):
            if "src=" not in tag and 'type="py"' not in tag:
                assert 'nonce="{{CSP_NONCE}}"' in tag, (page, tag)


def test_no_test_page_test_route_or_docs_without_the_hooks_and_the_schema_needs_a_session(tmp_path):
    srv = start_live(tmp_path / "data", test_hooks=False)
    try:
        anon = httpx.Client(base_url=srv.base_url)
        for path in ("/test-pages/test/trace.html", "/test-pages/bench/bare.html", "/static/test/trace.html",
                     "/static/bench/bare.html", "/docs", "/redoc", "/docs/oauth2-redirect"):
            assert anon.get(path).status_code == 404, path
        assert anon.post("/api/test/users", json={"username": "x", "password": "y"}).status_code in (404, 405)
        r = anon.get("/openapi.json")
        assert r.status_code == 401 and r.json()["detail"]
        auth.add_user(srv.app.state.db, "gina", "pw-gina")
        client = httpx.Client(base_url=srv.base_url, headers={"X-Requested-With": "cellhub"})
        assert client.post("/api/session", json={"username": "gina", "password": "pw-gina"}).status_code == 200
        schema = client.get("/openapi.json")
        assert schema.status_code == 200 and "/api/projects/{project_id}/exports" in schema.json()["paths"]
        assert not any(p.startswith("/api/test") for p in schema.json()["paths"])
    finally:
        srv.stop()


@pytest.mark.parametrize("path", ["/test-pages/test/trace.html", "/test-pages/bench/bare.html",
                                  "/test-pages/bench/pyodide.html"])
def test_with_the_hooks_the_test_pages_are_served_under_the_same_headers(live: Live, path):
    r = httpx.get(live.base_url + path)
    assert r.status_code == 200 and "<script" in r.text
    _check_headers(r)
    assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*type=\"py\")[^>]*>", r.text), "inline script"


def test_only_the_client_worker_test_page_may_start_a_worker_from_a_blob(live: Live):
    """PyScript's ``PyWorker`` is made from a ``blob:`` URL (the Python client in Pyodide,
    ``e2e/test_client_in_pyodide.py``); no other page gets ``worker-src``, so workers stay
    limited to ``script-src`` (no ``blob:``) everywhere else."""
    page = httpx.get(live.base_url + "/test-pages/test/client_worker.html")
    assert page.status_code == 200 and _directives(page)["worker-src"] == ["'self'", "blob:"]
    for path in ("/test-pages/test/trace.html", "/signin", "/static/app.css"):
        directives = _directives(httpx.get(live.base_url + path))
        assert "worker-src" not in directives and "blob:" not in directives["script-src"], path
