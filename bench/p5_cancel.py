"""P5: cancel latency in each stage of an export, through the real ``Runner`` and ``JobStore``.

Set-up: a real SQLite database in a temporary folder, the server's ``Runner`` (one worker
thread) and ``JobStore``, and a build function that runs ``write_archive`` on a synthetic
project (``bench.synthetic``; all annotation and metrics formats, images, visualizations).
A calibration export (not cancelled) measures how long each stage lasts. Then, per stage
and trial: start a job, wait until its checkpoint first reports the stage, wait a random
0..80 % of the stage's calibrated length (at most ``MAX_WAIT_S``), and call
``Runner.cancel`` (as the cancel route does). Latency: from just before ``Runner.cancel``
until the worker's ``_run`` has returned (it stops at its next checkpoint, deletes its
partial file and ends). The files of
the job are checked to be gone at that moment. The stage is the one the worker reported
last before the cancel (a trial whose stage ended before the cancel counts for the next).
"""
from __future__ import annotations

import random
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from bench.common import BenchResult, Row, Summary

STAGES = ("metrics", "annotations", "images", "visualizations")  # write_archive's order
PROFILES = {"full": {"trials": 20, "images": 16, "objects": 20, "size": 1024},
            "quick": {"trials": 5, "images": 12, "objects": 20, "size": 1024},
            "tiny": {"trials": 1, "images": 3, "objects": 5, "size": 256}}
TARGET_P95_MS = 100.0
MAX_WAIT_S = 3.0  # a long stage is sampled in its first seconds (it repeats per image anyway)


def _setup(folder: Path, p: dict):
    from app.models import ExportOptions
    from bench.synthetic import make_project
    from server import accounts, project_store
    from server.db import Database
    from server.jobs import JobStore, Runner
    from server.archive.writer import write_archive

    project = make_project(p["images"], p["objects"], folder / "img", size=p["size"])
    db = Database(folder / "bench.sqlite3")
    user_id = accounts.ensure_user(db, "bench")
    with db.writing() as conn:
        project_id = project_store.insert_project(conn, project, user_id)
    state = {"stage": "", "target": None, "reached": threading.Event(), "seen": {}}

    def build(job, dest, checkpoint):
        def watched(stage: str, fraction: float, message: str) -> None:
            if stage != state["stage"]:
                state["stage"] = stage
                state["seen"].setdefault(stage, time.perf_counter())
                if stage == state["target"]:
                    state["reached"].set()
            checkpoint(stage, fraction, message)

        return write_archive(project, project.images, job.options, dest, watched, tmpdir=str(folder)).warnings

    class TimedRunner(Runner):
        """``Runner`` that stamps when a worker's ``_run`` has returned."""

        finished: dict[str, float] = {}
        done: dict[str, threading.Event] = {}

        def _run(self, job_id: str) -> None:
            try:
                super()._run(job_id)
            finally:
                self.finished[job_id] = time.perf_counter()
                self.done[job_id].set()

    store = JobStore(db, folder / "exports", lambda _user, _event: None)
    runner = TimedRunner(store, build, None, workers=1)
    options = ExportOptions(annotation_formats=["coco", "yolo", "json"], metrics_formats=["csv", "xlsx", "json"],
                            include_images=True, include_visualizations=True, pixel_size_um=0.5)

    def start(target):
        state.update(stage="", target=target, seen={})
        state["reached"].clear()
        job, _ = store.create(user_id, project_id, options)
        runner.done[job.id] = threading.Event()
        runner.submit(job.id)
        return job.id

    return runner, store, state, start


def run(profile: str, env: Any) -> BenchResult:
    """Measure P5 (``profile``: full, quick or tiny) in a folder under ``env.scratch``."""
    p = PROFILES[profile]
    rng = random.Random(5)
    samples: dict[str, list[float]] = {s: [] for s in STAGES}
    call_ms: list[float] = []
    leftovers = 0
    with tempfile.TemporaryDirectory(prefix="cellhub-p5-", dir=env.scratch) as tmp:
        runner, store, state, start = _setup(Path(tmp), p)
        try:
            job_id = start(None)
            t0 = time.perf_counter()
            runner.done[job_id].wait(600)
            end = runner.finished[job_id]
            seen = state["seen"]
            order = [s for s in STAGES if s in seen] + ["finalizing"]
            bounds = {s: seen[s] for s in seen}
            bounds.setdefault("finalizing", end)
            lengths = {s: (bounds.get(order[i + 1], end) - bounds[s]) for i, s in enumerate(order[:-1])}
            calib = end - t0
            for target in STAGES:
                for _ in range(p["trials"]):
                    job_id = start(target)
                    if not state["reached"].wait(600):
                        raise RuntimeError(f"stage {target} never reached")
                    time.sleep(rng.uniform(0.0, min(0.8 * lengths[target], MAX_WAIT_S)))
                    stage_now = state["stage"]
                    t_cancel = time.perf_counter()
                    runner.cancel(job_id)
                    call_ms.append((time.perf_counter() - t_cancel) * 1000)
                    if not runner.done[job_id].wait(600):
                        raise RuntimeError("worker did not stop")
                    latency_ms = (runner.finished[job_id] - t_cancel) * 1000
                    if store.archive_path(job_id).exists() or store.partial_path(job_id).exists():
                        leftovers += 1
                    if stage_now in samples:
                        samples[stage_now].append(latency_ms)
        finally:
            runner.shutdown()
    result = BenchResult("P5", "Cancel latency per stage (Runner.cancel until the worker has stopped)", {
        "project": f"{p['images']} images of {p['size']}x{p['size']} px, {p['objects']} objects each (bench/synthetic.py)",
        "options": "COCO+YOLO+JSON, metrics CSV+XLSX+JSON, images, visualizations",
        "trials per stage": p["trials"], "runner": "server.jobs.Runner, 1 worker thread, real SQLite JobStore",
        "calibration": f"one full export {calib:.1f} s; stage lengths " +
                       ", ".join(f"{s} {v:.2f} s" for s, v in lengths.items()),
    })
    for stage in STAGES:
        if samples[stage]:
            result.rows.append(Row(f"cancel during {stage}", "ms", Summary.of(samples[stage]), stat="p95")
                               .judge(below=TARGET_P95_MS))
        else:
            result.notes.append(f"no cancel landed in stage {stage}")
    result.rows.append(Row("Runner.cancel call itself, all stages (row CAS + event)", "ms", Summary.of(call_ms),
                           stat="p95").judge())
    result.notes.append(f"files left behind after the worker stopped: {leftovers} "
                        f"(of {sum(len(v) for v in samples.values())} cancels)")
    return result
