"""The export worker (``server.jobs.Runner``) honours a cancel inside a long per-image step and
leaves no file behind (issue 4), with the real ``JobStore`` on SQLite and ``write_archive``."""
import threading

import numpy as np
from PIL import Image

from app.models import ExportOptions
from server.archive import write_archive
from server import accounts, project_store
from server.db import Database
from server.domain import ImageRecord, ProjectRecord, SegObject
from server.jobs import JobStore, Runner


def _project(folder, images=3, size=1024):
    folder.mkdir()
    path = folder / "noise.png"
    Image.fromarray(np.random.default_rng(4).integers(0, 256, (size, size), dtype=np.uint8)).save(path)
    ring = [(100.0, 100.0), (200.0, 100.0), (200.0, 200.0), (100.0, 200.0)]
    records = [ImageRecord(i, f"im{i}.png", size, size, str(path), [SegObject(1, "cell", [[ring]])])
               for i in range(1, images + 1)]
    return ProjectRecord(1, "p", ["cell"], images=records)


def test_cancel_while_an_overlay_is_decoded_stops_inside_that_step(tmp_path):
    project = _project(tmp_path / "img")
    db = Database(tmp_path / "db.sqlite3")
    user = accounts.ensure_user(db, "u")
    with db.writing() as conn:
        project_id = project_store.insert_project(conn, project, user)
    store = JobStore(db, tmp_path / "exports", lambda _user, _event: None)
    seen: list[tuple[str, float, str]] = []
    reached, resume = threading.Event(), threading.Event()
    outcome: dict = {}

    def build(job, dest, checkpoint):
        def watched(stage, fraction, message):
            seen.append((stage, fraction, message))
            if sum(call[0] == "visualizations" for call in seen) == 2:
                reached.set()  # the first check from inside image 1's overlay step: cancel here
                resume.wait(30)
            checkpoint(stage, fraction, message)

        try:
            return write_archive(project, project.images, job.options, dest, watched).warnings
        except BaseException as exc:
            outcome["raised"] = type(exc).__name__
            raise

    runner = Runner(store, build, None, workers=1)
    try:
        job, _ = store.create(user, project_id, ExportOptions(annotation_formats=[], include_visualizations=True))
        runner.submit(job.id)
        assert reached.wait(30)
        assert runner.cancel(job.id).status == "cancelled"
        resume.set()
    finally:
        runner.shutdown()  # waits for the worker to return
    assert outcome == {"raised": "JobCancelled"}
    assert store.get(job.id).status == "cancelled"
    assert not store.partial_path(job.id).exists() and not store.archive_path(job.id).exists()
    overlay = [call for call in seen if call[0] == "visualizations"]
    # Stopped at the check made while image 1 was decoded: the report of its drawing (80 % of
    # the image, a larger fraction) and image 2 never came.
    assert len(overlay) == 2
    assert {message for _, _, message in overlay} == {"Visualizations: 1 of 3"}
    assert overlay[0][1] == overlay[1][1]


def test_the_delay_hook_sleeps_per_report_not_per_repeated_cancel_check(tmp_path, monkeypatch):
    import server.jobs
    from server.jobs import TestHooks

    db = Database(tmp_path / "db.sqlite3")
    user = accounts.ensure_user(db, "u")
    with db.writing() as conn:
        project_id = project_store.insert_project(conn, ProjectRecord(1, "p", ["cell"]), user)
    store = JobStore(db, tmp_path / "exports", lambda _user, _event: None)
    sleeps: list[float] = []
    monkeypatch.setattr(server.jobs.time, "sleep", sleeps.append)

    def build(job, dest, checkpoint):
        for stage, fraction in (("annotations", 0.1), ("annotations", 0.5), ("metrics", 0.5)):
            for _ in range(10):  # one report, then nine repeats of it (cancel checks)
                checkpoint(stage, fraction, "m")
        dest.write_bytes(b"zip")
        return []

    runner = Runner(store, build, TestHooks(delay_per_checkpoint_ms=5), workers=1)
    try:
        job, _ = store.create(user, project_id, ExportOptions())
        runner.submit(job.id)
        waited = threading.Event()  # time.sleep is the recorder here
        for _ in range(3000):
            if store.get(job.id).status == "completed":
                break
            waited.wait(0.01)
    finally:
        runner.shutdown()
    assert store.get(job.id).status == "completed"
    assert sleeps == [0.005, 0.005, 0.005]
