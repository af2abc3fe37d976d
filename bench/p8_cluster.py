"""P8: the cluster (issue 20), every part a real process (``testkit.cluster``: a private
PostgreSQL, a web replica with ``--workers 0``, worker processes, one shared folder).

- Cancel latency across processes: an export of the P4 project (``bench.synthetic``: COCO +
  YOLO + JSON + metrics CSV/XLSX/JSON) is started through the replica, runs on a worker
  process, and is cancelled through the replica at a random moment of its run (0.2 s to 60 %
  of a calibrated export's length after it reports running). Latency: from just before the
  cancel request is sent until the worker has stopped: its queue ticket was finished as
  aborted (procrastinate's ``aborted`` event, written by the worker once its export's attempt
  has returned and removed its files; the database's clock, on this same machine). The
  cancel request's own time and the files left behind are reported too.
- Throughput of 1 against 2 workers: ``exports`` exports of the P4 project (one per user,
  queued at once) with one worker process, then the same with two; makespan from the first
  start request until every export is completed. Baseline: the 1-worker makespan (a ratio
  below 1 is a speed-up).
"""
from __future__ import annotations

import random
import time
import uuid
from pathlib import Path
from typing import Any

from bench.common import BenchResult, Row, Summary

PROFILES = {"full": {"trials": 50, "images": 500, "objects": 50, "size": 256, "exports": 4},
            "quick": {"trials": 10, "images": 100, "objects": 50, "size": 256, "exports": 2},
            "tiny": {"trials": 2, "images": 5, "objects": 10, "size": 128, "exports": 2}}
TARGET_P95_MS = 100.0
OPTIONS = {"annotation_formats": ["coco", "yolo", "json"], "metrics_formats": ["csv", "xlsx", "json"],
           "pixel_size_um": 0.5}


def _project(cluster, p: dict) -> int:
    """The P4 project in the cluster's database, its images in the shared folder."""
    from bench.synthetic import make_project
    from server.db import Database
    from server.projects import persist_project

    project = make_project(p["images"], p["objects"], cluster.folder / "img", size=p["size"])
    db = Database.from_url(cluster.database_url)
    try:
        return persist_project(db, cluster.shared / "files", project, [Path(i.path) for i in project.images],
                               public=True)
    finally:
        db.dispose()


def _users(cluster, count: int) -> list:
    import httpx

    replica = cluster.replicas[0]
    clients = []
    for _ in range(count):
        name, password = f"b{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
        assert replica.api("POST", "/api/test/users", {"username": name, "password": password})[0] == 200
        client = httpx.Client(base_url=replica.base_url, headers={"X-Requested-With": "cellhub"}, timeout=60)
        assert client.post("/api/session", json={"username": name, "password": password}).status_code == 200
        clients.append(client)
    return clients


def _wait(client, job_id: str, statuses: set[str], timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.get(f"/api/exports/{job_id}").json()
        if job["status"] in statuses:
            return job
        time.sleep(0.02)
    raise RuntimeError(f"export {job_id} never reached {statuses}")


def _makespan(clients: list, project_id: int) -> float:
    started = time.perf_counter()
    jobs = [(c, c.post(f"/api/projects/{project_id}/exports", json=OPTIONS).json()["id"]) for c in clients]
    for client, job_id in jobs:
        if _wait(client, job_id, {"completed", "failed", "cancelled"})["status"] != "completed":
            raise RuntimeError(f"export {job_id} did not complete")
    return time.perf_counter() - started


def _stopped_at(cluster, job_id: str, timeout: float = 60):
    """When the worker running ``job_id`` finished its ticket as aborted (seconds since the
    epoch); None if the export had completed before the cancel (the ticket succeeded)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = cluster.sql("SELECT q.status::text, (SELECT extract(epoch FROM e.at)::float8 FROM procrastinate_events e "
                           "WHERE e.job_id = q.id AND e.type = 'aborted') FROM jobs j "
                           "LEFT JOIN procrastinate_jobs q ON q.id = j.run_ticket WHERE j.id = %s", job_id)
        status, at = rows[0]
        if status == "aborted":
            return at
        if status != "doing":
            return None
        time.sleep(0.005)
    raise RuntimeError(f"the worker of {job_id} never stopped")


def _cancel_trials(cluster, client, project_id: int, p: dict, run_s: float) -> tuple[list, list, int]:
    rng = random.Random(8)
    latencies, calls, leftovers = [], [], 0
    for _ in range(p["trials"]):
        job_id = client.post(f"/api/projects/{project_id}/exports", json=OPTIONS).json()["id"]
        _wait(client, job_id, {"running"})
        time.sleep(rng.uniform(0.2, max(0.25, 0.6 * run_s)))
        sent = time.time()
        answer = client.post(f"/api/exports/{job_id}/cancel")
        calls.append((time.time() - sent) * 1000)
        stopped = _stopped_at(cluster, job_id) if answer.json()["status"] == "cancelled" else None
        if stopped is None:
            continue  # it completed first: no stop to time
        latencies.append((stopped - sent) * 1000)
        files = cluster.replicas[0].api("GET", f"/api/test/jobs/{job_id}")[1]["files"]
        leftovers += bool(files)
    return latencies, calls, leftovers


def run(profile: str, env: Any) -> BenchResult:
    """Measure P8 (``profile``: full, quick or tiny)."""
    from testkit.cluster import start_cluster

    p = PROFILES[profile]
    cluster = start_cluster(replicas=1, workers=1, lease_seconds=30, grace_seconds=5)
    try:
        project_id = _project(cluster, p)
        clients = _users(cluster, p["exports"])
        calibration = _makespan(clients[:1], project_id)
        one = [_makespan(clients, project_id)]
        cluster.start_worker()
        cluster.wait_workers(2)
        two = [_makespan(clients, project_id)]
        latencies, calls, leftovers = _cancel_trials(cluster, clients[0], project_id, p, calibration)
    finally:
        cluster.stop()
    result = BenchResult("P8", "The cluster: cancel latency across processes; 1 vs 2 worker processes", {
        "project": f"{p['images']} images of {p['size']}x{p['size']} px, {p['objects']} objects each (the P4 project)",
        "options": "COCO+YOLO+JSON, metrics CSV+XLSX+JSON",
        "cluster": "private PostgreSQL 15 (Unix socket), 1 web replica (--workers 0), 1 then 2 worker processes "
                   "(--concurrency 1), shared folder on the local disk",
        "calibration": f"one export alone, start request to completed: {calibration:.2f} s",
        "trials": p["trials"],
    })
    if latencies:
        result.rows.append(Row("cancel request until the worker process stopped", "ms", Summary.of(latencies),
                               stat="p95").judge(below=TARGET_P95_MS))
    result.rows.append(Row("the cancel request itself (CAS + queue abort + NOTIFY, one transaction)", "ms",
                           Summary.of(calls), stat="p95").judge())
    result.rows.append(Row(f"{p['exports']} exports queued at once, 2 workers: makespan", "s", Summary.of(two),
                           baseline=Summary.of(one), baseline_name="the same exports, 1 worker").judge())
    result.notes.append(f"cancels that landed before completion: {len(latencies)} of {p['trials']}; "
                        f"files left behind after the worker stopped: {leftovers}")
    return result
