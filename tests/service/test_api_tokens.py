"""Personal API tokens (issue 21): made from a session, shown once, stored hashed, listed
without the secret, revocable, optional expiry; ``Authorization: Bearer`` acts as the user
without a CSRF header; a revoked or expired token is 401 at once, and an open WebSocket
opened with it is closed."""
from __future__ import annotations

import hashlib
import time
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect as ws_connect

from server import api_tokens
from tests.service.conftest import Client, Live
from testkit.api_session import recv_events


def make_token(user: Client, name: str = "script", **extra) -> dict:
    r = user.http.post("/api/tokens", json={"name": name, **extra})
    assert r.status_code == 201, r.text
    return r.json()


def bearer_client(live: Live, secret: str) -> httpx.Client:
    """A client with nothing but the token: no cookie, no CSRF header."""
    return httpx.Client(base_url=live.base_url, headers={"Authorization": f"Bearer {secret}"}, timeout=30)


def bearer_socket(live: Live, secret: str):
    url = live.base_url.replace("http://", "ws://") + "/api/ws"
    return ws_connect(url, additional_headers={"Authorization": f"Bearer {secret}"}, open_timeout=10)


def test_a_token_is_shown_once_stored_hashed_and_listed_without_its_secret(live: Live):
    alice = live.new_user()
    made = make_token(alice, "  notebook  ", expires_at=(datetime.now(timezone.utc) + timedelta(days=30)).isoformat())
    secret = made["token"]
    assert secret.startswith("chub_") and len(secret) >= 40
    assert made["name"] == "notebook" and made["prefix"] == secret[:12] and made["expired"] is False
    listed = alice.http.get("/api/tokens")
    assert listed.status_code == 200
    assert [t["id"] for t in listed.json()] == [made["id"]]
    assert "token" not in listed.json()[0] and secret not in listed.text
    rows = live.app.state.db.all("SELECT * FROM api_tokens")
    assert [r["token_hash"] for r in rows] == [hashlib.sha256(secret.encode()).hexdigest()]
    assert not any(secret in str(value) for row in rows for value in row.values())
    bob = live.new_user()
    assert bob.http.get("/api/tokens").json() == []


def test_a_bearer_request_acts_as_the_user_without_csrf_header_and_cookies_still_need_it(live: Live):
    alice = live.new_user()
    secret = make_token(alice)["token"]
    with bearer_client(live, secret) as script:
        started = script.post(f"/api/projects/{live.project_id}/exports", json={})
        assert started.status_code == 202, started.text
        assert alice.job(started.json()["id"])["id"] == started.json()["id"]  # alice's job
        assert script.get("/api/session").json()["username"] == alice.username
    cookie_only = httpx.Client(base_url=live.base_url, cookies=alice.http.cookies, timeout=30)
    with cookie_only:
        refused = cookie_only.post(f"/api/exports/{started.json()['id']}/cancel")
    assert refused.status_code == 403


def test_the_bearer_token_wins_over_a_cookie_of_another_user(live: Live):
    alice, bob = live.new_user(), live.new_user()
    secret = make_token(alice)["token"]
    r = bob.http.get("/api/session", headers={"Authorization": f"Bearer {secret}"})
    assert r.json()["username"] == alice.username
    bad = bob.http.get("/api/session", headers={"Authorization": "Bearer chub_nonsense"})
    assert bad.status_code == 401  # a bad token never falls back to the cookie


def test_revoked_unknown_and_expired_tokens_are_401_at_once_saying_why(live: Live):
    alice = live.new_user()
    kept, revoked = make_token(alice, "kept"), make_token(alice, "revoked")
    soon = make_token(alice, "short", expires_at=(datetime.now(timezone.utc) + timedelta(seconds=1.5)).isoformat())
    with bearer_client(live, revoked["token"]) as script:
        assert script.get("/api/projects").status_code == 200
        assert alice.http.delete(f"/api/tokens/{revoked['id']}").status_code == 200
        answer = script.get("/api/projects")
    assert answer.status_code == 401
    assert answer.json()["detail"] == "this API token was revoked"
    assert answer.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    with bearer_client(live, "chub_" + "x" * 43) as stranger:
        assert stranger.get("/api/projects").json()["detail"] == "unknown API token"
    with bearer_client(live, "-") as nonsense:
        assert nonsense.get("/api/projects").status_code == 401
    with bearer_client(live, soon["token"]) as script:
        assert script.get("/api/projects").status_code == 200
        time.sleep(max(0.0, datetime.fromisoformat(soon["expires_at"]).timestamp() - time.time()) + 0.1)
        expired = script.get("/api/projects")
    assert (expired.status_code, expired.json()["detail"]) == (401, "this API token has expired")
    listed = {t["name"]: t for t in alice.http.get("/api/tokens").json()}
    assert set(listed) == {"kept", "short"} and listed["short"]["expired"] is True
    with bearer_client(live, kept["token"]) as script:
        assert script.get("/api/projects").status_code == 200


def test_revoking_a_token_closes_the_websockets_it_opened_at_once(live: Live):
    alice = live.new_user()
    made = make_token(alice)
    with bearer_socket(live, made["token"]) as socket, alice.websocket() as page_socket:
        job = alice.start().json()
        recv_events(socket, lambda e: e.get("job_id") == job["id"])  # events reach the token's socket
        revoked_at = time.monotonic()
        assert alice.http.delete(f"/api/tokens/{made['id']}").json() == {"revoked": made["id"], "closed_sockets": 1}
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                socket.recv(timeout=5)
        assert closed.value.rcvd.code == 4401 and "revoked" in closed.value.rcvd.reason
        assert time.monotonic() - revoked_at < 2
        alice.wait_status(job["id"], {"completed"})
        recv_events(page_socket, lambda e: e.get("job_id") == job["id"] and e["status"] == "completed")
    with pytest.raises(Exception):
        bearer_socket(live, made["token"])  # refused from now on


def test_a_websocket_opened_with_a_token_closes_when_the_token_expires(live: Live):
    alice = live.new_user()
    made = make_token(alice, expires_at=(datetime.now(timezone.utc) + timedelta(seconds=1.5)).isoformat())
    expires = datetime.fromisoformat(made["expires_at"]).timestamp()
    with bearer_socket(live, made["token"]) as socket:
        with pytest.raises(ConnectionClosed) as closed:
            while True:
                socket.recv(timeout=10)
    assert closed.value.rcvd.code == 4401 and "expired" in closed.value.rcvd.reason
    assert expires - 0.2 <= time.time() < expires + 3


def test_tokens_are_managed_from_a_session_with_clear_errors(live: Live):
    alice, bob = live.new_user(), live.new_user()
    made = make_token(alice)
    with bearer_client(live, made["token"]) as script:
        assert script.post("/api/tokens", json={"name": "more"}).status_code == 403
        assert script.get("/api/tokens").status_code == 403
        assert script.delete(f"/api/tokens/{made['id']}").status_code == 403
    for body, field in (({"name": "   "}, "name"), ({"name": "x" * 101}, "name"), ({}, "name"),
                        ({"name": "a", "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
                        ({"name": "a", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
                        ({"name": "a", "scope": "all"}, "scope")):
        r = alice.http.post("/api/tokens", json=body)
        assert r.status_code == 422, (body, r.text)
        assert [item["field"] for item in r.json()["detail"]] == [field], r.json()
    assert bob.http.delete(f"/api/tokens/{made['id']}").status_code == 404
    assert alice.http.delete(f"/api/tokens/{made['id']}").status_code == 200
    assert alice.http.delete(f"/api/tokens/{made['id']}").status_code == 404
    assert alice.http.delete("/api/tokens/99999999999999999999").status_code == 422
    anonymous = httpx.post(live.base_url + "/api/tokens", json={"name": "x"}, headers={"X-Requested-With": "cellhub"})
    assert anonymous.status_code == 401


def test_a_user_has_at_most_fifty_usable_tokens(live: Live):
    alice = live.new_user()
    made = [make_token(alice, f"t{i}") for i in range(api_tokens.MAX_ACTIVE)]
    refused = alice.http.post("/api/tokens", json={"name": "one more"})
    assert refused.status_code == 409 and "revoke one first" in refused.json()["detail"]
    assert alice.http.delete(f"/api/tokens/{made[0]['id']}").status_code == 200
    make_token(alice, "one more")
