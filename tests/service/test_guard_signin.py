"""Sign-in under attack (issue 16, item 4): throttling per name and per address with 429 +
Retry-After, one password check for known and unknown names alike, checks bounded in
parallel, one-time links that expire and die at a restart, a strict ``next``, and
``users add`` that never takes the password from the command line."""
from __future__ import annotations

import io
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from server import accounts, auth
from server.cli import main
from server.db import Database
from server.guard.next_path import safe_next
from server.guard.signin import BASE_DELAY_S, FREE_FAILURES, MAX_DELAY_S, Throttle
from tests.service.conftest import Live, start_live

ROOT = Path(__file__).resolve().parents[2]


def _post(srv: Live, name: str, password: str, address: str | None = None) -> httpx.Response:
    headers = {"X-Requested-With": "cellhub"}
    if address:
        headers["X-Forwarded-For"] = address
    return httpx.post(srv.base_url + "/api/session", json={"username": name, "password": password},
                      headers=headers, timeout=60)


@pytest.fixture
def proxied(tmp_path):
    """A server behind a (pretend) proxy on 127.0.0.1, so a test can choose client addresses."""
    srv = start_live(tmp_path / "data", behind_proxy=["127.0.0.1"])
    auth.add_user(srv.app.state.db, "bob", "right-bob")
    yield srv
    srv.stop()


def test_after_five_failures_a_name_waits_longer_each_time_and_then_signs_in(proxied: Live):
    for k in range(FREE_FAILURES):  # five guesses from five addresses: only the name adds up
        assert _post(proxied, "bob", f"guess{k}", f"10.0.0.{k}").status_code == 401
    r = _post(proxied, "bob", "right-bob", "10.0.1.1")
    assert r.status_code == 429 and r.headers["retry-after"] == "1" and r.json()["detail"], r.text
    assert _post(proxied, "BOB", "right-bob", "10.0.1.2").status_code == 429  # names fold case
    time.sleep(1.1)
    assert _post(proxied, "bob", "wrong again", "10.0.1.3").status_code == 401  # sixth failure
    r = _post(proxied, "bob", "right-bob", "10.0.1.4")
    assert r.status_code == 429 and r.headers["retry-after"] == "2", r.text
    time.sleep(2.1)
    r = _post(proxied, "bob", "right-bob", "10.0.1.5")
    assert r.status_code == 200 and "cellhub_session" in r.headers["set-cookie"]
    assert _post(proxied, "bob", "x", "10.0.1.6").status_code == 401  # the success cleared the name


def test_after_five_failures_an_address_waits_whatever_name_it_tries(proxied: Live):
    auth.add_user(proxied.app.state.db, "dora", "right-dora")
    for k in range(FREE_FAILURES):
        assert _post(proxied, f"nobody{k}", "guess", "10.9.9.9").status_code == 401
    r = _post(proxied, "dora", "right-dora", "10.9.9.9")
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1
    assert _post(proxied, "dora", "right-dora", "10.9.9.10").status_code == 200  # another address
    time.sleep(1.1)
    assert _post(proxied, "dora", "right-dora", "10.9.9.9").status_code == 200


def test_without_a_trusted_proxy_the_forwarded_address_is_ignored(live: Live):
    auth.add_user(live.app.state.db, "erin", "right-erin")
    for k in range(FREE_FAILURES):
        assert _post(live, f"x{k}", "guess", f"10.1.0.{k}").status_code == 401
    assert _post(live, "erin", "right-erin", "10.2.0.1").status_code == 429


def test_known_and_unknown_names_cost_one_password_check_each(live: Live, monkeypatch):
    calls: list[str] = []
    real = auth.verify_password
    monkeypatch.setattr(auth, "verify_password", lambda h, p: calls.append(p) or real(h, p))
    auth.add_user(live.app.state.db, "frank", "right-frank")
    accounts.ensure_user(live.app.state.db, "nopassword")
    for name, password, status in (("frank", "wrong", 401), ("no-such-user", "wrong", 401),
                                   ("nopassword", "wrong", 401), ("frank", "right-frank", 200)):
        before = len(calls)
        assert _post(live, name, password).status_code == status
        assert len(calls) - before == 1, (name, calls)


def test_password_checks_run_at_most_parallel_at_once(proxied: Live, monkeypatch):
    guard = proxied.app.state.signin
    guard.max_waiting = 3
    running, peak, lock = [0], [0], threading.Lock()
    real = auth.verify_password

    def slow_verify(stored, password):
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        try:
            time.sleep(0.3)
            return real(stored, password)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(auth, "verify_password", slow_verify)
    with ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda k: _post(proxied, f"guesser{k}", "x", f"10.5.0.{k}"), range(16)))
    statuses = sorted(r.status_code for r in answers)
    assert peak[0] <= guard.parallel, peak
    assert statuses.count(401) >= guard.parallel and statuses.count(429) >= 16 - guard.parallel - 3 - 2, statuses
    busy = [r for r in answers if r.status_code == 429]
    assert all(r.headers["retry-after"] == "1" and "at once" in r.json()["detail"] for r in busy)
    assert guard._queued == 0


def test_the_throttle_doubles_up_to_its_cap_forgets_and_stays_bounded():
    now = [1000.0]
    throttle = Throttle(clock=lambda: now[0], max_keys=50)
    for k in range(FREE_FAILURES - 1):
        throttle.failed("name:a")
        assert throttle.wait_for("name:a") == 0
    delays = []
    for _ in range(14):
        throttle.failed("name:a")
        delays.append(throttle.wait_for("name:a"))
    assert delays[:4] == [BASE_DELAY_S, 2 * BASE_DELAY_S, 4 * BASE_DELAY_S, 8 * BASE_DELAY_S]
    assert max(delays) == MAX_DELAY_S
    now[0] += 2 * 3600  # an hour after the last failure it is forgotten
    assert throttle.wait_for("name:a") == 0
    for k in range(500):
        throttle.failed(f"name:n{k}")
    assert len(throttle) == 50


def _link(srv: Live, user: int) -> str:
    """A one-time link printed by ``srv`` (as the run command prints it at start)."""
    return auth.new_login_token(srv.app.state.db, user, srv.app.state.services.boot_id)


def _follow(srv: Live, token: str) -> httpx.Response:
    return httpx.get(f"{srv.base_url}/login?token={token}", follow_redirects=False)


def test_a_login_link_expires_and_dies_at_a_restart(tmp_path):
    data = tmp_path / "data"
    first = start_live(data, login_link_minutes=15)
    db = first.app.state.db
    user = accounts.ensure_user(db, auth.DEFAULT_USER)
    fresh, old, kept = (_link(first, user) for _ in range(3))
    db.execute("UPDATE login_tokens SET created_at = created_at - 16 * 60 WHERE token_hash = ?", (auth._h(old),))
    try:
        assert _follow(first, old).status_code == 403
        assert _follow(first, fresh).status_code == 303
    finally:
        first.stop()
    second = start_live(data)
    try:
        r = _follow(second, kept)
        assert r.status_code == 403 and "last start" in r.text
        assert _follow(second, _link(second, user)).status_code == 303
    finally:
        second.stop()


def test_a_login_link_of_another_start_is_refused_while_it_runs(tmp_path):
    """Two servers on one database (the replicas of issue 20): starting one leaves the other's
    links alive, and each takes only its own."""
    data = tmp_path / "data"
    first = start_live(data)
    try:
        user = accounts.ensure_user(first.app.state.db, auth.DEFAULT_USER)
        of_first = _link(first, user)
        second = start_live(data)  # after the first printed its link
        try:
            of_second = _link(second, user)
            assert _follow(second, of_first).status_code == 403
            assert _follow(first, of_second).status_code == 403
            assert _follow(first, of_first).status_code == 303
            assert _follow(second, of_second).status_code == 303
        finally:
            second.stop()
    finally:
        first.stop()


def test_the_run_command_takes_the_link_lifetime():
    from server.cli import build_parser

    assert build_parser().parse_args(["run"]).login_link_minutes == 15
    assert build_parser().parse_args(["run", "--login-link-minutes", "2.5"]).login_link_minutes == 2.5
    for bad in ("0", "-1", "nan", "inf", "x"):
        with pytest.raises(SystemExit):
            build_parser().parse_args(["run", "--login-link-minutes", bad])


BAD_NEXT = ["/\t/evil.example/x", "//evil.example", "/\\evil.example", "\\/evil.example", "https://evil.example",
            "http:/evil.example", "javascript:alert(1)", "/ok/\n/evil", "/a//b", "/x\u2028y", "/ /evil",
            "evil.example", "", "/\x00", "/%0a" + "x" * 3000, " /x"]


@pytest.mark.parametrize("raw", BAD_NEXT)
def test_next_refuses_anything_but_a_same_origin_path(raw):
    assert safe_next(raw) == "/"


@pytest.mark.parametrize("raw", ["/", "/?project=3", "/?project=%2F%2Fx", "/a/b?c=d#e", "/%09x"])
def test_next_keeps_a_same_origin_path(raw):
    assert safe_next(raw) == raw


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("/\\:.%@?#ab \t\n\r\x00\x0b\u00a0\u2028evil")), max_size=30))
def test_whatever_next_says_the_browser_stays_on_the_site(raw):
    # What a WHATWG URL parser does with it: tabs and newlines are dropped, '\' is '/'.
    target = safe_next(raw)
    cleaned = "".join(c for c in target if c not in "\t\n\r").replace("\\", "/")
    assert urlsplit(urljoin("http://hub.example:8000/", cleaned)).netloc == "hub.example:8000", target


def test_the_sign_in_page_carries_only_a_safe_next(live: Live):
    page = httpx.get(live.base_url + "/signin", params={"next": "/\t/evil.example/x"})
    assert 'data-next="/"' in page.text
    page = httpx.get(live.base_url + "/signin", params={"next": "/?project=2&x=\"<"})
    assert 'data-next="/?project=2&amp;x=&quot;&lt;"' in page.text


def test_users_add_reads_the_password_from_standard_input_never_the_command_line(tmp_path, monkeypatch, capsys):
    data = tmp_path / "data"
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret pass\n"))
    assert main(["users", "--data-dir", str(data), "add", "alice"]) == 0
    db = Database(data / "cellhub.sqlite3")
    assert auth.check_password(db, "alice", "s3cret pass") is not None
    with pytest.raises(SystemExit):
        main(["users", "--data-dir", str(data), "add", "bob", "--password", "visible-in-ps"])
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    assert main(["users", "--data-dir", str(data), "add", "carol"]) == 2
    assert "no password" in capsys.readouterr().err
    # The real command, fed through a pipe.
    done = subprocess.run([sys.executable, "-m", "server", "users", "--data-dir", str(data), "add", "dave"],
                          input="piped-pw\n", text=True, capture_output=True, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert auth.check_password(db, "dave", "piped-pw") is not None
