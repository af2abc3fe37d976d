"""P7: fairness. One user queues many exports of a 100-image project; another user then starts
a single 1-image export. How long does the second user wait for a worker?

Set-up: a data folder prepared first with ``persist_project``: the heavy user's project (the
demo generator's images) and ``jobs - 1`` more projects of the same images (rows pointing at
the same files: R1 allows one active export per user and project), and the light user's
1-image project. The real server in a child process (``bench.serve``: 2 worker threads as the
run command, no cap on active exports, the scheduling under test), one WebSocket per user.

Per trial: the heavy user starts all its exports, then the light user starts one. Times come
from the events' ``ts`` (the server's clock when it emitted them): a job's queue wait is its
first ``running`` event minus its creation (the light user's request), its running time its
``completed`` event minus its first ``running`` one. Measure: the light user's wait; baseline:
the running time of one heavy (100-image) export in the same trial. The heavy user's
remaining exports are cancelled once the light one has completed.

Round-robin (``--scheduling round-robin``, the default) against first in, first out
(``--scheduling fifo``), same server options otherwise.
"""
from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, Row, Summary
from bench.env import HEADERS, start_server

PROFILES = {"full": {"jobs": 20, "images": 100, "size": 256, "trials": 3},
            "quick": {"jobs": 8, "images": 40, "size": 256, "trials": 1},
            "tiny": {"jobs": 3, "images": 3, "size": 64, "trials": 1}}
OPTIONS = {"annotation_formats": ["coco", "yolo", "json"], "metrics_formats": ["csv", "json"], "include_images": False}
PASSWORD = "p7-fairness-bench"
DEADLINE_S = 900


def _prepare(data_dir: Path, p: dict) -> dict[str, Any]:
    """The users and projects; ``{"heavy": [project ids], "light": project id}``."""
    import dataclasses

    from server import accounts, auth, project_store
    from server.db import Database
    from server.demo import generate_demo
    from server.projects import persist_project

    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "files").mkdir(exist_ok=True)
    db = Database(data_dir / "cellhub.sqlite3")
    heavy, light = (auth.add_user(db, name, PASSWORD) for name in ("heavy", "light"))
    demo = generate_demo(n_images=p["images"], size=p["size"])
    first = persist_project(db, data_dir / "files", demo.project,
                            [demo.image_bytes[image.id] for image in demo.project.images], owner_id=heavy)
    rel_paths = [row["rel_path"] for row in project_store.image_rows(db, first)]
    projects = [first]
    with db.writing() as conn:
        for k in range(1, p["jobs"]):
            copy = dataclasses.replace(demo.project, name=f"Heavy project {k + 1}")
            pid = project_store.insert_project(conn, copy, heavy)
            for position, (image, rel_path) in enumerate(zip(demo.project.images, rel_paths)):
                project_store.insert_image(conn, pid, position, image, rel_path)
            projects.append(pid)
    one = generate_demo(n_images=1, size=p["size"])
    light_project = persist_project(db, data_dir / "files", one.project, [one.image_bytes[1]], owner_id=light)
    assert accounts.user_id(db, "light") == light
    db.dispose()
    return {"heavy": projects, "light": light_project}


class Watcher:
    """One user's WebSocket: ``ts`` of each job's first running event and of its end."""

    def __init__(self, base_url: str, cookie: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(base_url.replace("http://", "ws://") + "/api/ws", additional_headers={"Cookie": cookie},
                          open_timeout=30)
        self.running: dict[str, float] = {}
        self.ended: dict[str, tuple[str, float]] = {}
        self.changed = threading.Condition()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        try:
            for raw in self.ws:
                event = json.loads(raw)
                job, status = event.get("job_id"), event.get("status")
                if job is None:
                    continue
                with self.changed:
                    if status == "running":
                        self.running.setdefault(job, float(event["ts"]) / 1000)
                    elif status in ("completed", "failed", "cancelled"):
                        self.ended.setdefault(job, (status, float(event["ts"]) / 1000))
                    self.changed.notify_all()
        except Exception:  # noqa: BLE001 - closed at the end of the trial
            pass

    def wait_ended(self, job_id: str, timeout_s: float) -> tuple[str, float]:
        with self.changed:
            if not self.changed.wait_for(lambda: job_id in self.ended, timeout=timeout_s):
                raise RuntimeError(f"P7: job {job_id} did not end in {timeout_s} s")
            return self.ended[job_id]

    def close(self) -> None:
        self.ws.close()
        self.thread.join(10)


def _session(base_url: str, username: str):
    import httpx

    http = httpx.Client(base_url=base_url, headers=HEADERS, timeout=60)
    http.post("/api/session", json={"username": username, "password": PASSWORD}).raise_for_status()
    return http, "; ".join(f"{k}={v}" for k, v in http.cookies.items())


def _trial(base_url: str, projects: dict[str, Any]) -> dict[str, Any]:
    heavy_http, heavy_cookie = _session(base_url, "heavy")
    light_http, light_cookie = _session(base_url, "light")
    heavy_ws, light_ws = Watcher(base_url, heavy_cookie), Watcher(base_url, light_cookie)
    try:
        heavy_jobs = []
        for pid in projects["heavy"]:
            r = heavy_http.post(f"/api/projects/{pid}/exports", json=OPTIONS)
            if r.status_code != 202:
                raise RuntimeError(f"P7: heavy start {r.status_code} {r.text}")
            heavy_jobs.append(r.json()["id"])
        asked = time.time()
        r = light_http.post(f"/api/projects/{projects['light']}/exports", json=OPTIONS)
        if r.status_code != 202:
            raise RuntimeError(f"P7: light start {r.status_code} {r.text}")
        light_job = r.json()["id"]
        status, _ = light_ws.wait_ended(light_job, DEADLINE_S)
        if status != "completed":
            raise RuntimeError(f"P7: the light export ended {status}")
        wait = light_ws.running[light_job] - asked
        # At least one heavy export must have run to its end for the baseline.
        heavy_ws.wait_ended(heavy_jobs[0], DEADLINE_S)
        for job in heavy_jobs:
            heavy_http.post(f"/api/exports/{job}/cancel")
        for job in heavy_jobs:
            heavy_ws.wait_ended(job, DEADLINE_S)
        ran = [heavy_ws.ended[j][1] - heavy_ws.running[j] for j in heavy_jobs
               if heavy_ws.ended[j][0] == "completed" and j in heavy_ws.running]
        for job in heavy_jobs + [light_job]:  # the next trial starts from an empty quota
            (heavy_http if job != light_job else light_http).delete(f"/api/exports/{job}")
        return {"wait": wait, "heavy_runs": ran, "heavy_done": len(ran)}
    finally:
        heavy_ws.close()
        light_ws.close()
        heavy_http.close()
        light_http.close()


def run(profile: str, env: Any) -> BenchResult:
    """Measure P7 (``profile``: full, quick or tiny) with its own servers under ``env.scratch``."""
    p = PROFILES[profile]
    data_dir = env.scratch / "p7" / "data"
    projects = _prepare(data_dir, p)
    measured: dict[str, list[dict]] = {"round-robin": [], "fifo": []}
    for _ in range(p["trials"]):
        for scheduling in measured:  # interleaved, so a busy machine slows both alike
            server = start_server(data_dir, workers=2, extra=["--scheduling", scheduling,
                                                            "--max-active-exports-per-user", str(p["jobs"] + 1)])
            try:
                measured[scheduling].append(_trial(server.base_url, projects))
            finally:
                server.stop()
    result = BenchResult("P7", "Fairness: a single export's wait behind another user's queue", {
        "heavy user": f"{p['jobs']} exports at once, one per project of {p['images']} demo images of "
                      f"{p['size']}x{p['size']} px",
        "light user": "1 export of a 1-image project, started right after",
        "server": "2 worker threads (as the run command), no cap on active exports",
        "export options": json.dumps(OPTIONS), "trials": str(p["trials"]),
        "times": "from the events' ts (server clock): wait = first running event minus the start request",
    })
    for scheduling, trials in measured.items():
        waits = [t["wait"] for t in trials]
        runs = [r for t in trials for r in t["heavy_runs"]]
        row = Row(f"light user's wait, {scheduling}", "s", Summary.of(waits), Summary.of(runs),
                  f"one {p['images']}-image export", stat="median")
        result.rows.append(row.judge(max_ratio=1.0) if scheduling == "round-robin" else row.judge())
        result.notes.append(f"{scheduling}: waits {', '.join(f'{w:.2f}' for w in waits)} s; "
                            f"heavy exports run to completion per trial {[t['heavy_done'] for t in trials]}")
    return result
