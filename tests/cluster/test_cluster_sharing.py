"""Issue 15's rules on a cluster (2 replicas, 2 workers): the per-user cap over starts spread
over both replicas, revocation cancelling a worker's export through the cluster's cancel,
and ``project.gone`` reaching pages on the other replica (the 404 rule across replicas).
Round-robin over users across workers: ``test_cluster_store.py``."""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path

from websockets.exceptions import ConnectionClosed

from bench.synthetic import make_project
from server.db import Database
from server.projects import persist_project
from tests.cluster.conftest import hooks, new_user, wait_state
from testkit.api_session import recv_events


def _own_projects(cluster, username: str, count: int, tmp_path: Path) -> list[int]:
    """``count`` private projects of 3 small images owned by ``username``."""
    db = Database.from_url(cluster.database_url)
    try:
        (owner,) = cluster.sql("SELECT id FROM users WHERE username = %s", username)[0]
        made = []
        for n in range(count):
            project = make_project(3, 5, tmp_path / f"img{n}", size=128)
            made.append(persist_project(db, cluster.shared / "files", project,
                                        [Path(i.path) for i in project.images], owner_id=owner))
        return made
    finally:
        db.dispose()


def _silent(ws, seconds: float) -> list[dict]:
    got = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            message = json.loads(ws.recv(timeout=left))
        except (TimeoutError, ConnectionClosed):
            break
        if message.get("type") != "ping":
            got.append(message)
    return got


def test_the_per_user_cap_holds_over_starts_on_both_replicas(cluster, tmp_path):
    user = new_user(cluster)
    projects = _own_projects(cluster, user.name, 4, tmp_path)
    hooks(cluster, hold_before_complete=True)
    barrier = threading.Barrier(4)
    answers: list = [None] * 4

    def start(n: int) -> None:
        barrier.wait()
        answers[n] = user.on(n % 2).start(projects[n])

    threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(r.status_code for r in answers) == [202, 202, 202, 429], [r.text for r in answers]
    refused = next(r for r in answers if r.status_code == 429)
    assert "limit is 3" in refused.json()["detail"]
    for r in answers:
        if r.status_code == 202:
            user.on(0).http.post(f"/api/exports/{r.json()['id']}/cancel")


def test_revoking_a_member_cancels_its_running_export_and_tells_its_page_on_the_other_replica(cluster, tmp_path):
    owner, bob = new_user(cluster), new_user(cluster)
    (project,) = _own_projects(cluster, owner.name, 1, tmp_path)
    assert owner.on(0).http.post(f"/api/projects/{project}/members",
                                 json={"username": bob.name, "role": "viewer"}).status_code in (200, 201)
    hooks(cluster, hold_before_complete=True)
    with bob.on(1).websocket() as ws:
        job = bob.on(0).start(project).json()
        wait_state(cluster, job["id"], lambda s: s["held"])  # running on a worker process
        assert owner.on(0).http.delete(f"/api/projects/{project}/members/{bob.name}").status_code in (200, 204)
        events = recv_events(ws, lambda e: e.get("type") == "project.gone", timeout=30)
    mine = [e for e in events if e.get("job_id") == job["id"]]
    assert mine[-1]["type"] == "export.cancelled"  # before project.gone: the page stops waiting
    assert events[-1] == {**events[-1], "type": "project.gone", "project_id": project}
    state = wait_state(cluster, job["id"], lambda s: not s["held"] and not s["files"])
    assert state["status"] == "cancelled"
    for session in bob.sessions:  # 404 on both replicas, like an unknown job
        assert session.http.get(f"/api/exports/{job['id']}").status_code == 404
        assert session.http.get(f"/api/projects/{project}").status_code == 404
    with bob.on(1).websocket() as ws:  # the reconnect snapshot leaves it out
        assert [e for e in _silent(ws, 0.5) if e.get("project_id") == project] == []


def test_a_project_made_private_or_deleted_is_gone_for_pages_on_every_replica(cluster, tmp_path):
    owner, member, reader, stranger = (new_user(cluster) for _ in range(4))
    public, private = _own_projects(cluster, owner.name, 2, tmp_path)
    owner.on(0).http.patch(f"/api/projects/{public}", json={"public": True})
    owner.on(0).http.post(f"/api/projects/{public}/members", json={"username": member.name})
    owner.on(0).http.post(f"/api/projects/{private}/members", json={"username": member.name})
    with reader.on(1).websocket() as reader_ws, member.on(1).websocket() as member_ws, \
            stranger.on(1).websocket() as stranger_ws:
        assert owner.on(0).http.patch(f"/api/projects/{public}", json={"public": False}).status_code == 200
        gone = recv_events(reader_ws, lambda e: e.get("type") == "project.gone")[-1]
        assert gone["project_id"] == public  # the public reader, no job of its own, on the other replica
        assert owner.on(0).http.delete(f"/api/projects/{private}").status_code in (200, 204)
        member_events = recv_events(member_ws, lambda e: e.get("type") == "project.gone")
        # The member still sees the first project: only the deleted one is gone for it.
        assert [e["project_id"] for e in member_events if e.get("type") == "project.gone"] == [private]
        # Nobody hears of a private project they could never see.
        assert [e for e in _silent(stranger_ws, 1.0) if e.get("project_id") == private] == []
