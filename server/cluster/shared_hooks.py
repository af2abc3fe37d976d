"""The test hooks across processes (exist only with ``CELLHUB_TEST_HOOKS=1``): the same
controls as ``server.jobs.TestHooks``, kept in files under ``<shared-dir>/test-hooks/`` so that
a control set through any web replica reaches every worker, a job held by a worker is seen
held and released through any replica, and download counts add up over all replicas.

Files (every write is atomic: a temporary name renamed, or one ``O_APPEND`` write):
- ``controls.json``: ``{hold_before_complete, delay_per_checkpoint_ms}``;
- ``held/<job>``: a worker is parked before that job's completion; ``released/<job>``: go on;
- ``counts/<job>.<kind>``: one byte per download request (``requests``) or 200 (``served``);
- ``runs/<job>``: the process id of the worker that claimed the job last.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

POLL_S = 0.005


class SharedTestHooks:
    """``TestHooks`` over a folder every process of the cluster shares."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        for sub in ("held", "released", "counts", "runs"):
            (self.folder / sub).mkdir(parents=True, exist_ok=True)
        self._controls_path = self.folder / "controls.json"
        self._cache: tuple[int, dict] = (-1, {})

    # --- controls ------------------------------------------------------------------
    def _controls(self) -> dict:
        try:
            stamp = self._controls_path.stat().st_mtime_ns
        except FileNotFoundError:
            return {}
        if stamp != self._cache[0]:
            try:
                self._cache = (stamp, json.loads(self._controls_path.read_text()))
            except (FileNotFoundError, ValueError):
                return self._cache[1]
        return self._cache[1]

    def _set(self, **values) -> None:
        controls = {**self._controls(), **values}
        tmp = self.folder / f".controls.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(controls))
        os.replace(tmp, self._controls_path)

    @property
    def hold_before_complete(self) -> bool:
        return bool(self._controls().get("hold_before_complete", False))

    @hold_before_complete.setter
    def hold_before_complete(self, value: bool) -> None:
        self._set(hold_before_complete=bool(value))

    @property
    def delay_per_checkpoint_ms(self) -> float:
        return float(self._controls().get("delay_per_checkpoint_ms", 0.0))

    @delay_per_checkpoint_ms.setter
    def delay_per_checkpoint_ms(self, value: float) -> None:
        self._set(delay_per_checkpoint_ms=float(value))

    # --- the hold before completion ------------------------------------------------------
    def hold_point(self, job_id: str, is_cancelled: Callable[[], bool]) -> None:
        if not self.hold_before_complete:
            return
        held, released = self.folder / "held" / job_id, self.folder / "released" / job_id
        mine = f"{os.getpid()} {time.monotonic_ns()}"  # another attempt may park here after us
        held.write_text(mine)
        try:
            while not released.exists() and not is_cancelled():
                time.sleep(POLL_S)
        finally:
            if _read(held) == mine:  # no longer parked, whichever way it left
                held.unlink(missing_ok=True)
                released.unlink(missing_ok=True)

    def release(self, job_id: str) -> bool:
        if not (self.folder / "held" / job_id).exists():
            return False
        (self.folder / "released" / job_id).touch()
        return True

    def is_held(self, job_id: str) -> bool:
        return (self.folder / "held" / job_id).exists() and not (self.folder / "released" / job_id).exists()

    def reset(self) -> int:
        """No hold, no delay, every held job released; how many were held."""
        self._set(hold_before_complete=False, delay_per_checkpoint_ms=0.0)
        held = [p.name for p in (self.folder / "held").iterdir()]
        for job_id in held:
            (self.folder / "released" / job_id).touch()
        return len(held)

    # --- which process runs a job ---------------------------------------------------------------
    def note_run(self, job_id: str) -> None:
        """This process has claimed ``job_id`` (tests kill or stop that very worker)."""
        tmp = self.folder / "runs" / f".{job_id}.{os.getpid()}"
        tmp.write_text(str(os.getpid()))
        os.replace(tmp, self.folder / "runs" / job_id)

    def run_pid(self, job_id: str):
        try:
            return int((self.folder / "runs" / job_id).read_text())
        except (FileNotFoundError, ValueError):
            return None

    # --- download counts -------------------------------------------------------------------
    def download_counts(self) -> "SharedCounts":
        return SharedCounts(self.folder / "counts")


def _read(path: Path):
    try:
        return path.read_text()
    except FileNotFoundError:
        return None


class SharedCounts:
    """Counts per job id and kind that every process adds to (``test_hooks.DownloadCounts``)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def add(self, kind: str, job_id: str) -> None:
        fd = os.open(self.folder / f"{job_id}.{kind}", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, b".")
        finally:
            os.close(fd)

    def get(self, kind: str, job_id: str) -> int:
        try:
            return (self.folder / f"{job_id}.{kind}").stat().st_size
        except FileNotFoundError:
            return 0
