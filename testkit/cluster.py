"""A whole cluster for tests and benchmarks, every part a real process: a private PostgreSQL
(``testkit.postgres``), migrated with ``python -m server migrate``, web replicas
(``python -m server run --database-url ... --shared-dir ... --workers 0``) and workers
(``python -m server worker ...``) sharing one temporary folder, with the test hooks on.
``stop()`` stops every process and removes every folder.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from testkit import free_port, stop_process
from testkit.postgres import PrivatePostgres, start_postgres

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Proc:
    """One process of the cluster with its log."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    ended_on_purpose: bool = False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def terminate(self) -> None:
        """SIGTERM, without waiting."""
        self.ended_on_purpose = True
        self.proc.terminate()

    def stop(self, timeout: float = 30) -> Optional[int]:
        self.ended_on_purpose = True
        return stop_process(self.proc, signal.SIGTERM, timeout)

    def kill(self) -> None:
        """SIGKILL: nothing of the process runs any more (a crash, a lost machine)."""
        self.ended_on_purpose = True
        self.proc.kill()
        self.proc.wait()


def api_call(base_url: str, method: str, path: str, body: Any = None,
             cookies: dict | None = None) -> tuple[int, Any]:
    """One API request as the page makes it (JSON ``body``, the CSRF header): the status and
    the decoded JSON answer (its text if it is not JSON)."""
    import httpx

    r = httpx.request(method, base_url + path, json=body, headers={"X-Requested-With": "cellhub"},
                      cookies=cookies, timeout=30)
    try:
        return r.status_code, r.json()
    except ValueError:
        return r.status_code, r.text


@dataclass
class Replica(Proc):
    base_url: str = ""
    port: int = 0

    def api(self, method: str, path: str, body: Any = None, cookies: dict | None = None) -> tuple[int, Any]:
        return api_call(self.base_url, method, path, body, cookies)


@dataclass
class Cluster:
    pg: PrivatePostgres
    folder: Path
    shared: Path
    database_url: str
    lease_seconds: float
    grace_seconds: float
    replicas: list[Replica] = field(default_factory=list)
    workers: list[Proc] = field(default_factory=list)
    _count: int = 0

    def _env(self) -> dict:
        return dict(os.environ, CELLHUB_TEST_HOOKS="1", PYTHONUNBUFFERED="1")

    def _spawn(self, name: str, args: list[str]) -> tuple[subprocess.Popen, Path]:
        self._count += 1
        log_path = self.folder / f"{self._count:02d}-{name}.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "server", *args], cwd=ROOT, env=self._env(),
                                    stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        return proc, log_path

    def _cluster_args(self) -> list[str]:
        return ["--database-url", self.database_url, "--shared-dir", str(self.shared),
                "--lease-seconds", str(self.lease_seconds), "--grace-seconds", str(self.grace_seconds)]

    def migrate(self) -> str:
        out = subprocess.run([sys.executable, "-m", "server", "migrate", "--database-url", self.database_url],
                             cwd=ROOT, env=self._env(), capture_output=True, text=True, timeout=120)
        if out.returncode != 0:
            raise RuntimeError(f"migrate failed:\n{out.stdout}\n{out.stderr}")
        return out.stdout

    def start_replica(self, workers: int = 0) -> Replica:
        port = free_port()
        # Behind nginx as the README has it: the host the tests use, the proxy's headers trusted.
        proc, log_path = self._spawn(f"replica-{port}", ["run", "--port", str(port), "--workers", str(workers),
                                                         "--allowed-hosts", "127.0.0.1",
                                                         "--behind-proxy", "127.0.0.1", *self._cluster_args()])
        replica = Replica(f"replica-{port}", proc, log_path, base_url=f"http://127.0.0.1:{port}", port=port)
        self.replicas.append(replica)
        return replica

    def start_worker(self, concurrency: int = 1) -> Proc:
        proc, log_path = self._spawn("worker", ["worker", "--concurrency", str(concurrency), *self._cluster_args()])
        worker = Proc(f"worker-{proc.pid}", proc, log_path)
        self.workers.append(worker)
        return worker

    def wait_replica(self, replica: Replica, timeout: float = 120) -> str:
        """Wait until the replica answers; its one-time sign-in URL."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = replica.log()
            found = re.search(r"(http://\S+/login\?token=\S+)", text)
            if found:
                try:
                    with socket.create_connection(("127.0.0.1", replica.port), timeout=0.5):
                        return found.group(1)
                except OSError:
                    pass
            if not replica.alive():
                raise RuntimeError(f"{replica.name} exited:\n{text}")
            time.sleep(0.1)
        raise RuntimeError(f"{replica.name} did not start:\n{replica.log()}")

    def worker_count(self) -> int:
        """Workers registered in the queue whose heartbeat is fresh."""
        import psycopg

        with psycopg.connect(self.pg.conninfo()) as conn:
            return conn.execute("SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > "
                                "now() - make_interval(secs => %s)", (self.lease_seconds,)).fetchone()[0]

    def wait_workers(self, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.worker_count() < count:
            dead = [w for w in self.workers if not w.alive() and not w.ended_on_purpose]
            if dead:
                raise RuntimeError(f"{dead[0].name} exited:\n{dead[0].log()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.worker_count()} of {count} workers registered")
            time.sleep(0.1)

    def sql(self, query: str, *params: Any) -> list[tuple]:
        """Rows of ``query`` run on the cluster's database (``%s`` placeholders)."""
        import psycopg

        with psycopg.connect(self.pg.conninfo(), autocommit=True) as conn:
            cursor = conn.execute(query, params or None)
            return cursor.fetchall() if cursor.description else []

    def logs(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.log()[-4000:]}" for p in [*self.replicas, *self.workers])

    def stop(self) -> None:
        for part in [*self.replicas, *self.workers]:
            part.stop()
        self.pg.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster(replicas: int = 2, workers: int = 2, lease_seconds: float = 3.0,
                  grace_seconds: float = 5.0) -> Cluster:
    """A migrated database, ``replicas`` web replicas (no in-process workers) and ``workers``
    worker processes, all started and ready."""
    pg = start_postgres()
    folder = Path(tempfile.mkdtemp(prefix="cellhub-cluster-"))
    shared = folder / "shared"
    shared.mkdir()
    cluster = Cluster(pg, folder, shared, pg.url(), lease_seconds, grace_seconds)
    try:
        cluster.migrate()
        started = [cluster.start_replica() for _ in range(replicas)]
        for _ in range(workers):
            cluster.start_worker()
        for replica in started:
            cluster.wait_replica(replica)
        cluster.wait_workers(workers)
    except BaseException:
        cluster.stop()
        raise
    return cluster
