"""The CLI's user management and the rule that test hooks exist only when asked for."""
from __future__ import annotations

import httpx
import pytest

from server import auth
from server.cli import main
from server.db import Database
from tests.service.conftest import start_live


def test_users_add_hashes_the_password_and_refuses_duplicates(tmp_path, capsys, monkeypatch):
    import io
    import sys

    data = tmp_path / "data"
    monkeypatch.setattr(sys, "stdin", io.StringIO("s3cret\nx\nx\n"))
    assert main(["users", "--data-dir", str(data), "add", "alice"]) == 0
    db = Database(data / "cellhub.sqlite3")
    stored = db.one("SELECT password_hash FROM users WHERE username = 'alice'")["password_hash"]
    assert stored.startswith("$argon2id$") and "s3cret" not in stored
    assert auth.check_password(db, "alice", "s3cret") is not None
    assert auth.check_password(db, "alice", "wrong") is None
    assert main(["users", "--data-dir", str(data), "add", "alice"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(["users", "--data-dir", str(data), "add", "bad name!"]) == 2
    assert main(["users", "--data-dir", str(data), "list"]) == 0
    assert "alice" in capsys.readouterr().out


def test_test_hooks_exist_only_when_turned_on(tmp_path):
    srv = start_live(tmp_path / "data", test_hooks=False)
    try:
        assert srv.app.state.hooks is None
        r = httpx.post(srv.base_url + "/api/test/hooks", json={"hold_before_complete": True})
        assert r.status_code in (404, 405)
        assert httpx.get(srv.base_url + "/api/test/jobs/x").status_code in (401, 404)
    finally:
        srv.stop()


def test_the_run_command_serves_no_test_hooks_and_prints_a_login_url(tmp_path):
    import os
    import re
    import socket
    import subprocess
    import sys
    import time
    from pathlib import Path

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "CELLHUB_TEST_HOOKS"}
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.Popen(
        [sys.executable, "-m", "server", "run", "--port", str(port), "--data-dir", str(tmp_path / "d")],
        cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while url is None and time.monotonic() < deadline:
            line = proc.stdout.readline()
            m = re.search(r"(http://127\.0\.0\.1:\d+/login\?token=\S+)", line)
            url = m.group(1) if m else None
        assert url, "no login URL printed"
        client = httpx.Client()
        for _ in range(200):
            try:
                first = client.get(url, follow_redirects=False)
                break
            except httpx.ConnectError:
                time.sleep(0.05)
        assert first.status_code == 303
        assert client.get(f"http://127.0.0.1:{port}/api/projects").status_code == 200
        hooks = client.post(f"http://127.0.0.1:{port}/api/test/hooks", json={}, headers={"X-Requested-With": "cellhub"})
        assert hooks.status_code in (404, 405)
        assert (tmp_path / "d" / "cellhub.sqlite3").exists()
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_a_data_folder_from_before_start_tokens_is_upgraded_in_place(tmp_path):
    """A jobs table made before ``start_token`` existed gets the column (and its unique
    index) when the server opens it; its rows are kept."""
    import sqlite3

    from sqlalchemy import inspect

    from server.db import Database

    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE jobs (id TEXT PRIMARY KEY, user_id INTEGER NOT NULL, project_id INTEGER NOT NULL,"
                     " status TEXT NOT NULL, progress REAL NOT NULL DEFAULT 0, stage TEXT NOT NULL DEFAULT '',"
                     " message TEXT NOT NULL DEFAULT '', seq INTEGER NOT NULL DEFAULT 0, created_at TEXT NOT NULL,"
                     " finished_at TEXT, delivered INTEGER NOT NULL DEFAULT 0, size_bytes INTEGER,"
                     " warnings_json TEXT NOT NULL DEFAULT '[]', options_json TEXT NOT NULL, archive_name TEXT,"
                     " attempts INTEGER NOT NULL DEFAULT 0)")
        conn.execute("INSERT INTO jobs(id, user_id, project_id, status, created_at, options_json)"
                     " VALUES ('old', 1, 1, 'completed', '2026-01-01T00:00:00Z', '{}')")
    db = Database(path)
    columns = {column["name"] for column in inspect(db.engine).get_columns("jobs")}
    assert "start_token" in columns
    assert db.one("SELECT id, start_token FROM jobs")["id"] == "old"
    indexes = {index["name"] for index in inspect(db.engine).get_indexes("jobs")}
    assert "one_job_per_start_token" in indexes


def test_a_port_in_use_is_an_error_before_any_sign_in_link_or_data_folder(tmp_path):
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "server", "run", "--port", str(port), "--data-dir", str(tmp_path / "d")],
            cwd=Path(__file__).resolve().parents[2], env={k: v for k, v in os.environ.items()},
            capture_output=True, text=True, timeout=60,
        )
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "login?token=" not in out  # a link to whatever else listens there would not work
    assert "address already in use" in out.lower(), out
    assert not (tmp_path / "d").exists()


@pytest.mark.parametrize("value", ["-1", "0", "nan", "inf", "soon"])
def test_a_bad_archive_lifetime_is_refused_by_name(value, capsys):
    from server.cli import build_parser

    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args(["run", "--archive-ttl-hours", value])
    assert stop.value.code == 2
    assert "--archive-ttl-hours" in capsys.readouterr().err


@pytest.mark.parametrize("host, expected", [("127.0.0.1", "127.0.0.1"), ("0.0.0.0", "127.0.0.1"), ("", "127.0.0.1"),
                                            ("::", "[::1]"), ("::1", "[::1]"), ("localhost", "localhost")])
def test_the_sign_in_link_names_a_host_a_browser_can_reach(host, expected):
    from server.cli import url_host

    assert url_host(host) == expected
