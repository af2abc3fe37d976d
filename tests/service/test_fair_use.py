"""Fair use (R10) against the real server: the per-user cap of active exports (429), the
archive quota (507) and deleting finished exports, and the round-robin choice of the next job."""
from __future__ import annotations

import threading
import time

from server.cli import build_parser
from tests.service.conftest import Client, Live, start_live
from testkit.api_session import recv_events


def _projects(live: Live, owner: Client, n: int) -> list[int]:
    return [live.add_project(owner, name=f"P{k}") for k in range(n)]


def test_a_user_gets_at_most_three_active_exports_and_a_clear_429_beyond(live: Live):
    alice, bob = live.new_user(), live.new_user()
    live.app.state.hooks.hold_before_complete = True
    projects = _projects(live, alice, 4)
    jobs = [alice.start(project_id=pid) for pid in projects[:3]]
    assert [r.status_code for r in jobs] == [202, 202, 202]
    refused = alice.start(project_id=projects[3])
    assert refused.status_code == 429
    assert "limit is 3 per user" in refused.json()["detail"]
    again = alice.start(project_id=projects[0])
    assert again.status_code == 409 and again.json()["job"]["id"] == jobs[0].json()["id"]  # R1 first: attach
    assert bob.start().status_code == 202  # another user's share is their own
    assert alice.http.post(f"/api/exports/{jobs[0].json()['id']}/cancel").status_code == 200
    assert alice.start(project_id=projects[3]).status_code == 202


def test_simultaneous_starts_never_pass_the_cap(live: Live):
    alice = live.new_user()
    live.app.state.hooks.hold_before_complete = True
    projects = _projects(live, alice, 6)
    barrier = threading.Barrier(len(projects))
    codes: list[int] = []

    def start(pid: int) -> None:
        barrier.wait()
        codes.append(alice.start(project_id=pid).status_code)

    threads = [threading.Thread(target=start, args=(pid,)) for pid in projects]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sorted(codes) == [202, 202, 202, 429, 429, 429]
    assert live.app.state.db.scalar("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')") == 3


def test_the_archive_quota_refuses_with_507_until_a_finished_export_is_deleted(tmp_path):
    srv = start_live(tmp_path / "data", archive_quota_bytes=1)
    try:
        alice, bob = srv.new_user(), srv.new_user()
        first = alice.start().json()
        alice.wait_status(first["id"], {"completed"})
        refused = alice.start()
        assert refused.status_code == 507
        assert "quota" in refused.json()["detail"] and "Delete exports" in refused.json()["detail"]
        assert bob.start().status_code == 202  # bob's quota is his own
        assert bob.http.delete(f"/api/exports/{first['id']}").status_code == 404  # not bob's
        store = srv.app.state.store
        assert store.archive_path(first["id"]).exists()
        with alice.websocket() as ws:
            assert alice.http.delete(f"/api/exports/{first['id']}").json() == {"deleted": first["id"]}
            # never downloaded: cancelled first (R2), so no tab downloads it
            recv_events(ws, lambda m: m.get("job_id") == first["id"] and m["status"] == "cancelled")
        assert not store.archive_path(first["id"]).exists()
        assert alice.http.get(f"/api/exports/{first['id']}").status_code == 404
        assert first["id"] not in [j["id"] for j in alice.http.get(f"/api/projects/{srv.project_id}/exports").json()]
        assert alice.start().status_code == 202
    finally:
        srv.stop()


def test_a_running_export_cannot_be_deleted_and_a_downloaded_one_can(live: Live):
    alice = live.new_user()
    live.app.state.hooks.hold_before_complete = True
    job = alice.start().json()
    alice.wait_status(job["id"], {"running"})
    r = alice.http.delete(f"/api/exports/{job['id']}")
    assert r.status_code == 409 and "cancel it first" in r.json()["detail"]
    live.app.state.hooks.hold_before_complete = False
    live.app.state.hooks.release(job["id"])
    alice.wait_status(job["id"], {"completed"})
    assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 200
    assert alice.http.delete(f"/api/exports/{job['id']}").status_code == 200
    assert not live.app.state.store.archive_path(job["id"]).exists()


def _run_order(srv: Live, alice: Client, bob: Client) -> list[str]:
    """Alice queues three exports, then Bob one, while one worker is busy with Alice's
    first; the order in which the worker takes them (each is held before completing)."""
    hooks = srv.app.state.hooks
    hooks.hold_before_complete = True
    names: dict[str, str] = {}
    for k, pid in enumerate(_projects(srv, alice, 3), start=1):
        names[alice.start(project_id=pid).json()["id"]] = f"alice{k}"
    first = next(iter(names))
    alice.wait_status(first, {"running"})
    names[bob.start().json()["id"]] = "bob"
    order: list[str] = []
    deadline = time.monotonic() + 60
    while len(order) < len(names) and time.monotonic() < deadline:
        for job_id, name in names.items():
            if name not in order and hooks.is_held(job_id):
                order.append(name)
                hooks.release(job_id)
        time.sleep(0.01)
    return order


def test_the_next_job_is_the_oldest_of_the_user_who_waited_longest(tmp_path):
    srv = start_live(tmp_path / "rr", workers=1)
    try:
        assert _run_order(srv, srv.new_user(), srv.new_user()) == ["alice1", "bob", "alice2", "alice3"]
    finally:
        srv.stop()


def test_without_round_robin_a_single_export_waits_behind_all_others(tmp_path):
    srv = start_live(tmp_path / "fifo", workers=1, round_robin=False)
    try:
        assert _run_order(srv, srv.new_user(), srv.new_user()) == ["alice1", "alice2", "alice3", "bob"]
    finally:
        srv.stop()


def test_the_run_command_takes_the_fair_use_options():
    args = build_parser().parse_args(["run", "--max-active-exports-per-user", "5", "--archive-quota-mb", "10",
                                      "--scheduling", "fifo"])
    assert (args.max_active_exports_per_user, args.archive_quota_mb, args.scheduling) == (5, 10.0, "fifo")
    defaults = build_parser().parse_args(["run"])
    assert (defaults.max_active_exports_per_user, defaults.archive_quota_mb, defaults.scheduling) == (
        3, 2048.0, "round-robin")
