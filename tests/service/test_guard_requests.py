"""Hostile requests (issue 16, items 3 and 5): bodies bounded before parsing, JSON within
bounds (422 naming the field), the Host header, the Origin's scheme/host/port, Secure
cookies. After every refusal, the database and the data folder are as they were."""
from __future__ import annotations

import json

import httpx
import pytest
from websockets.exceptions import InvalidStatus, WebSocketException

from server.guard.json_bounds import JsonBoundsError, load_json
from tests.service.conftest import Live, start_live
from tests.service.hostile_helpers import raw_request, state_of

DEEP = "[" * 100 + "]" * 100
HUGE = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("text, field, reason", [
    ('{"a": NaN}', "a", "NaN"),
    ('{"a": [1, -Infinity]}', "a[1]", "-Infinity"),
    ('{"opts": {"x": 1e400}}', "opts.x", "beyond the range of a float"),
    ('{"ids": [' + "9" * 400 + ".5]}", "ids[0]", "beyond the range of a float"),
    ('{"id": ' + "1" * 5001 + "}", "id", "5001 digits"),
    ('{"id": -' + "1" * 21 + "}", "id", "21 digits"),
    ('{"deep": ' + DEEP + "}", "deep" + "[0]" * 63, "deeper than 64"),
    (HUGE, "doc", "deeper than 64"),
])
def test_json_out_of_bounds_names_the_field(text, field, reason):
    with pytest.raises(JsonBoundsError) as err:
        load_json(text, "doc")
    where, why = err.value.problems[0]
    assert where == field and reason in why, err.value.problems


def test_json_within_bounds_is_parsed_as_json_does():
    text = json.dumps({"a": [1.5, -2, 10**19, -(10**19), 1.7e308], "b": {"c": [[[]]]}, "s": "NaN [[[["})
    assert load_json(text) == json.loads(text)
    assert load_json("[" * 64 + "]" * 64) == json.loads("[" * 64 + "]" * 64)


@pytest.mark.parametrize("body, field", [
    ('{"annotation_formats": ["coco"], "pixel_size_um": NaN}', "pixel_size_um"),
    ('{"annotation_formats": ["coco"], "pixel_size_um": 1e400}', "pixel_size_um"),
    ('{"annotation_formats": ["coco"], "unknown": Infinity}', "unknown"),
    ('{"annotation_formats": ["coco"], "image_ids": [' + "7" * 5001 + "]}", "image_ids[0]"),
    ('{"annotation_formats": ["coco"], "image_ids": [' + "7" * 25 + "]}", "image_ids[0]"),
    ('{"annotation_formats": ["coco"], "visualization": {"opacity": ' + DEEP + "}}",
     "visualization.opacity" + "[0]" * 62),
    (HUGE, "body"),
])
def test_export_options_out_of_json_bounds_are_a_422_naming_the_field(live: Live, body, field):
    alice = live.new_user()
    before = state_of(live.data_dir)
    r = alice.http.post(f"/api/projects/{live.project_id}/exports", content=body,
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text[:300]
    assert r.json()["detail"][0]["field"] == field, r.text[:300]
    assert state_of(live.data_dir) == before


def test_a_json_body_over_1_mib_is_refused_unread(live: Live):
    alice = live.new_user()
    before = state_of(live.data_dir)
    padding = "x" * (1024 * 1024)
    r = alice.http.post(f"/api/projects/{live.project_id}/exports",
                        json={"annotation_formats": ["coco"], "note": padding})
    assert r.status_code == 413 and r.json()["detail"][0]["field"] == "body", r.text[:300]
    # Declared 200 MiB, 1 MiB sent: the answer comes at once, the rest is never waited for.
    cookie = "; ".join(f"{k}={v}" for k, v in alice.http.cookies.items())
    head = (f"POST /api/projects/{live.project_id}/exports HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            f"Content-Type: application/json\r\nX-Requested-With: cellhub\r\nCookie: {cookie}\r\n"
            f"Content-Length: {200 * 1024 * 1024}")
    status, answer, _ = raw_request(live.base_url, head, b"{" + b" " * (1024 * 1024), read_timeout=10)
    assert status == 413, answer[:300]
    # No length declared (chunked): reading stops past 1 MiB.
    def chunks():
        for _ in range(40):
            yield b" " * (256 * 1024)
    r = alice.http.post(f"/api/projects/{live.project_id}/exports", content=chunks(),
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 413, r.text[:300]
    # Without a session the same body is not read either.
    anon_head = head.replace(f"Cookie: {cookie}\r\n", "")
    status, answer, _ = raw_request(live.base_url, anon_head, b"{" + b" " * 65536, read_timeout=10)
    assert status in (401, 413), answer[:300]
    assert state_of(live.data_dir) == before


def test_an_import_without_a_session_is_refused_before_its_body_is_read(live: Live):
    head = ("POST /api/projects/import HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Requested-With: cellhub\r\n"
            "Content-Type: multipart/form-data; boundary=b\r\n"
            f"Content-Length: {150 * 1024 * 1024}")
    before = state_of(live.data_dir)
    status, answer, seconds = raw_request(live.base_url, head, b"--b\r\n", read_timeout=10)
    assert status == 401, answer[:300]
    assert not (live.data_dir / "uploads").exists() or not any((live.data_dir / "uploads").iterdir())
    assert state_of(live.data_dir) == before


def test_another_host_header_is_a_400(live: Live):
    alice = live.new_user()
    for host in ("evil.example", "evil.example:80", "127.0.0.1.evil.example", "", "[::1"):
        r = alice.http.get("/api/projects", headers={"Host": host})
        assert r.status_code == 400 and "host" in r.json()["detail"], (host, r.status_code, r.text)
    for host in ("127.0.0.1", "localhost:1234", "LOCALHOST", "[::1]:8000"):
        assert alice.http.get("/api/projects", headers={"Host": host}).status_code == 200, host
    with pytest.raises((InvalidStatus, WebSocketException, OSError)):
        from websockets.sync.client import connect

        cookie = "; ".join(f"{k}={v}" for k, v in alice.http.cookies.items())
        with connect(live.base_url.replace("http", "ws") + "/api/ws",
                     additional_headers={"Cookie": cookie, "Host": "evil.example"}, open_timeout=5) as ws:
            ws.recv(timeout=5)


def test_allowed_hosts_can_name_the_server_s_public_names(tmp_path):
    srv = start_live(tmp_path / "data", allowed_hosts=["hub.example.org", "*.lab.example"])
    try:
        get = lambda host: httpx.get(srv.base_url + "/signin", headers={"Host": host}).status_code  # noqa: E731
        assert get("hub.example.org") == 200 and get("a.lab.example") == 200
        assert get("127.0.0.1") == 400 and get("lab.example") == 400 and get("evil.example") == 400
    finally:
        srv.stop()


def test_the_origin_check_compares_scheme_host_and_port(live: Live):
    alice = live.new_user()
    port = live.base_url.rsplit(":", 1)[1]
    url = f"/api/projects/{live.project_id}/exports"
    for origin in (f"https://127.0.0.1:{port}", f"http://127.0.0.1:{int(port) + 1}", "http://127.0.0.1",
                   "null", f"http://evil.example:{port}", f"http://127.0.0.1:{port}@evil.example"):
        r = alice.http.post(url, json={}, headers={"Origin": origin})
        assert r.status_code == 403, (origin, r.status_code, r.text)
        r = alice.http.post("/api/session", json={"username": alice.username, "password": "x"},
                            headers={"Origin": origin})
        assert r.status_code == 403, (origin, r.status_code, r.text)
    assert live.app.state.db.all("SELECT id FROM jobs") == []
    r = alice.http.post(url, json={}, headers={"Origin": f"http://127.0.0.1:{port}"})
    assert r.status_code == 202, r.text
    from websockets.sync.client import connect

    cookie = "; ".join(f"{k}={v}" for k, v in alice.http.cookies.items())
    ws_url = live.base_url.replace("http", "ws") + "/api/ws"
    with pytest.raises((InvalidStatus, WebSocketException, OSError, TimeoutError)):
        with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": f"https://127.0.0.1:{port}"},
                     open_timeout=5) as ws:
            ws.recv(timeout=3)
    with connect(ws_url, additional_headers={"Cookie": cookie, "Origin": f"http://127.0.0.1:{port}"},
                 open_timeout=5) as ws:
        assert json.loads(ws.recv(timeout=10))["job_id"]


def _sign_in(srv: Live, headers: dict | None = None) -> httpx.Response:
    from server import auth

    name = "carol"
    if srv.app.state.db.one("SELECT 1 FROM users WHERE username = ?", (name,)) is None:
        auth.add_user(srv.app.state.db, name, "pw-carol")
    return httpx.post(srv.base_url + "/api/session", json={"username": name, "password": "pw-carol"},
                      headers={"X-Requested-With": "cellhub", **(headers or {})})


def test_cookies_are_secure_when_asked_or_when_a_trusted_proxy_says_https(tmp_path):
    plain = start_live(tmp_path / "plain")
    try:
        assert "secure" not in _sign_in(plain).headers["set-cookie"].lower()
        # A client that is not a trusted proxy cannot claim https.
        r = _sign_in(plain, {"X-Forwarded-Proto": "https"})
        assert r.status_code == 200 and "secure" not in r.headers["set-cookie"].lower()
    finally:
        plain.stop()
    secure = start_live(tmp_path / "secure", secure_cookies=True)
    try:
        cookie = _sign_in(secure).headers["set-cookie"].lower()
        assert "; secure" in cookie and "httponly" in cookie and "samesite=strict" in cookie
    finally:
        secure.stop()
    proxied = start_live(tmp_path / "proxied", behind_proxy=["127.0.0.1"])
    try:
        port = proxied.base_url.rsplit(":", 1)[1]
        assert "secure" not in _sign_in(proxied, {"X-Forwarded-Proto": "http"}).headers["set-cookie"].lower()
        r = _sign_in(proxied, {"X-Forwarded-Proto": "https", "Origin": f"https://127.0.0.1:{port}"})
        assert r.status_code == 200 and "; secure" in r.headers["set-cookie"].lower()
        # Behind the proxy the page is https: an http Origin is another origin.
        r = _sign_in(proxied, {"X-Forwarded-Proto": "https", "Origin": f"http://127.0.0.1:{port}"})
        assert r.status_code == 403
    finally:
        proxied.stop()
