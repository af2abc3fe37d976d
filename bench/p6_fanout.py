"""P6: event fan-out, 200 WebSocket clients of one user while 10 exports run.

Set-up: the real server in a child process (``bench.serve``, 10 worker threads so the 10
jobs really run at once, test hooks on) over a data folder prepared first: one user and 10
small projects (the demo generator, 4 images of 256x256 px each) stored with
``server.projects.persist_project``. Every checkpoint of a job sleeps ``DELAY_MS`` (test hook
``delay_per_checkpoint_ms``) so the exports last a few seconds and emit a steady stream of
progress events (the runner sends at most one per job per 100 ms).

Clients: ``CLIENT_PROCS`` child processes (asyncio + the websockets library), each holding
its share of the connections, all signed in as the user. Once all are connected, the 10
exports are started (one per project, R1 allows it). Each client stamps ``time.time()`` the
moment a message arrives; latency = that minus the event's ``ts`` (the server stamps it when
it emits the event; one machine, one clock). A client is done when it has a terminal event
(completed/failed/cancelled) for all 10 jobs; one missing after the deadline is "lost".
Per connection and job, ``seq`` must grow by exactly one between events (gaps counted).

Baseline, same run and server: the same 10 jobs watched by a single connection.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchResult, Row, Summary
from bench.env import HEADERS, start_server

PROFILES = {"full": {"clients": 200, "jobs": 10, "procs": 4},
            "quick": {"clients": 50, "jobs": 10, "procs": 2},
            "tiny": {"clients": 4, "jobs": 2, "procs": 1}}
DELAY_MS = 15
DEADLINE_S = 600
TERMINAL = {"export.completed", "export.failed", "export.cancelled"}
OPTIONS = {"annotation_formats": ["coco", "yolo", "json"], "metrics_formats": ["csv", "json"], "include_images": True}


# --- the client child process ----------------------------------------------------------
async def _client(url: str, cookie: str, n_conns: int, n_jobs: int, deadline_s: float) -> dict:
    from websockets.asyncio.client import connect

    conns = []
    for _ in range(n_conns):
        conns.append(await connect(url, additional_headers={"Cookie": cookie}, open_timeout=60, max_queue=None))
    print("READY", flush=True)
    latencies: dict[str, list[float]] = {}
    terminal_counts: list[int] = []
    gaps = 0

    async def read(ws) -> None:
        nonlocal gaps
        last_seq: dict[str, int] = {}
        done: set[str] = set()
        try:
            while len(done) < n_jobs:
                raw = await ws.recv()
                now = time.time() * 1000
                event = json.loads(raw)
                kind = event.get("type")
                if kind == "ping":
                    continue
                latencies.setdefault(kind, []).append(now - float(event["ts"]))
                job = event["job_id"]
                if job in last_seq and event["seq"] != last_seq[job] + 1:
                    gaps += 1
                last_seq[job] = event["seq"]
                if kind in TERMINAL:
                    done.add(job)
        finally:
            terminal_counts.append(len(done))

    tasks = [asyncio.create_task(read(ws)) for ws in conns]
    await asyncio.wait(tasks, timeout=deadline_s)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for ws in conns:
        await ws.close()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {"latencies": latencies, "terminal_counts": terminal_counts, "gaps": gaps,
            "cpu_s": usage.ru_utime + usage.ru_stime}


def client_main(spec: dict) -> None:
    """Entry of a client child: connect, say READY, read until done, print the JSON result."""
    out = asyncio.run(_client(spec["url"], spec["cookie"], spec["conns"], spec["jobs"], spec["deadline"]))
    print(json.dumps(out), flush=True)


# --- the parent ---------------------------------------------------------------------------
def _prepare(data_dir: Path, n_projects: int) -> tuple[str, str]:
    from server import auth
    from server.db import Database
    from server.demo import generate_demo
    from server.projects import persist_project

    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "files").mkdir(exist_ok=True)
    db = Database(data_dir / "cellhub.sqlite3")
    username, password = "fanout", "fanout-bench-password"
    auth.add_user(db, username, password)
    demo = generate_demo(n_images=4, size=256)
    sources = [demo.image_bytes[image.id] for image in demo.project.images]
    for k in range(n_projects):
        project = dataclasses.replace(demo.project, name=f"Fan-out project {k + 1}")
        persist_project(db, data_dir / "files", project, sources)
    return username, password


def _watch(server: Any, cookie: str, http: Any, clients: int, procs: int, jobs: int) -> dict:
    url = server.base_url.replace("http://", "ws://") + "/api/ws"
    shares = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    children = []
    for share in shares:
        spec = json.dumps({"url": url, "cookie": cookie, "conns": share, "jobs": jobs, "deadline": DEADLINE_S})
        children.append(subprocess.Popen([sys.executable, "-m", "bench.p6_fanout", spec], cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for child in children:
        line = child.stdout.readline().strip()
        if line != "READY":
            raise RuntimeError(f"P6 client did not connect: {line} {child.stderr.read()[-2000:]}")
    project_ids = [p["id"] for p in http.get("/api/projects").json()][:jobs]
    cpu0 = _cpu_seconds(server.proc.pid)
    t0 = time.monotonic()
    job_ids = []
    for pid in project_ids:
        r = http.post(f"/api/projects/{pid}/exports", json=OPTIONS)
        if r.status_code != 202:
            raise RuntimeError(f"start export: {r.status_code} {r.text}")
        job_ids.append(r.json()["id"])
    merged: dict[str, Any] = {"latencies": {}, "terminal_counts": [], "gaps": 0, "client_cpu_s": 0.0}
    for child in children:
        out, err = child.communicate(timeout=DEADLINE_S + 60)
        if child.returncode != 0:
            raise RuntimeError(f"P6 client failed: {err[-2000:]}")
        part = json.loads(out.strip().splitlines()[-1])
        for kind, values in part["latencies"].items():
            merged["latencies"].setdefault(kind, []).extend(values)
        merged["terminal_counts"].extend(part["terminal_counts"])
        merged["gaps"] += part["gaps"]
        merged["client_cpu_s"] += part["cpu_s"]
    merged["seconds"] = time.monotonic() - t0
    merged["server_cpu_s"] = _cpu_seconds(server.proc.pid) - cpu0
    merged["statuses"] = [http.get(f"/api/exports/{j}").json()["status"] for j in job_ids]
    return merged


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads), from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(profile: str, env: Any) -> BenchResult:
    """Measure P6 (``profile``: full, quick or tiny) with its own server under ``env.scratch``."""
    import httpx

    p = PROFILES[profile]
    data_dir = env.scratch / "p6" / "data"
    username, password = _prepare(data_dir, p["jobs"])
    # One user runs all the jobs at once: lift the per-user cap of active exports (R10).
    server = start_server(data_dir, workers=p["jobs"], extra=["--max-active-exports-per-user", str(p["jobs"])])
    try:
        server.hooks(delay_per_checkpoint_ms=DELAY_MS)
        with httpx.Client(base_url=server.base_url, headers=HEADERS, timeout=60) as http:
            r = http.post("/api/session", json={"username": username, "password": password})
            r.raise_for_status()
            cookie = "; ".join(f"{k}={v}" for k, v in http.cookies.items())
            base = _watch(server, cookie, http, 1, 1, p["jobs"])
            fan = _watch(server, cookie, http, p["clients"], p["procs"], p["jobs"])
    finally:
        server.stop()
    result = BenchResult("P6", "WebSocket fan-out: event latency with many clients of one user", {
        "clients": f"{p['clients']} WebSockets of one user in {p['procs']} client processes",
        "jobs": f"{p['jobs']} exports at once, one per project (10 worker threads)",
        "projects": "demo generator, 4 images of 256x256 px each, persisted with persist_project",
        "export options": json.dumps(OPTIONS), "checkpoint delay": f"{DELAY_MS} ms (test hook)",
        "latency": "client time.time() at receipt minus the event's ts (server time.time() at emit)",
    })
    for label, kinds in (("progress events", {"export.progress"}), ("all events", None)):
        mine = [v for k, vs in fan["latencies"].items() if kinds is None or k in kinds for v in vs]
        ref = [v for k, vs in base["latencies"].items() if kinds is None or k in kinds for v in vs]
        result.rows.append(Row(f"{p['clients']} clients: {label}", "ms", Summary.of(mine), Summary.of(ref),
                               "1 client", stat="p95").judge())
    expected = p["clients"] * p["jobs"]
    got = sum(fan["terminal_counts"])
    lost = expected - got
    result.rows.append(Row(f"{p['clients']} clients: terminal events lost", "events", Summary.of([lost]),
                           target="0 lost", passed=lost == 0))
    result.notes.append(f"terminal events received {got} of {expected}; seq gaps {fan['gaps']}; "
                        f"final job statuses {sorted(set(fan['statuses']))}; all jobs done in {fan['seconds']:.1f} s "
                        f"(1-client baseline: {base['seconds']:.1f} s)")
    result.notes.append(
        f"CPU while the jobs ran: server {fan['server_cpu_s']:.1f} s, clients {fan['client_cpu_s']:.1f} s "
        f"in {fan['seconds']:.1f} s wall on {os.cpu_count()} cores (1-client baseline: server "
        f"{base['server_cpu_s']:.1f} s in {base['seconds']:.1f} s)")
    counts = {k: len(v) for k, v in fan["latencies"].items()}
    result.notes.append(f"events received by all clients: {counts}")
    result.notes.append("no latency target was set for P6; the rows are information")
    return result


if __name__ == "__main__":
    client_main(json.loads(sys.argv[1]))
