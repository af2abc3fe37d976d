"""Fixtures of the cluster tests (issue 20): a private PostgreSQL per module, and for the
process tests a whole cluster (``testkit.cluster``: 2 web replicas, 2 workers, one shared
temporary folder) per module, with users signed in on several replicas at once."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Iterator

import httpx
import pytest
from websockets.sync.client import connect as ws_connect

from testkit.cluster import Cluster, Replica, start_cluster
from testkit.postgres import PrivatePostgres, start_postgres


@pytest.fixture(scope="module")
def postgres() -> Iterator[PrivatePostgres]:
    server = start_postgres()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres) -> Iterator[str]:
    """A new, empty database of the module's server (dropped after the test)."""
    name = f"t{uuid.uuid4().hex[:12]}"
    yield postgres.create_database(name)
    postgres.drop_database(name)


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    running = start_cluster()
    yield running
    running.stop()


@pytest.fixture(autouse=True)
def _reset_hooks(request):
    """No hold or delay left over from an earlier test of the module (cluster tests only)."""
    if "cluster" in request.fixturenames:
        cluster = request.getfixturevalue("cluster")
        cluster.replicas[0].api("POST", "/api/test/reset")
        yield
        if cluster.replicas and cluster.replicas[0].alive():
            cluster.replicas[0].api("POST", "/api/test/reset")
    else:
        yield


@dataclass
class Session:
    """One user signed in on one replica."""

    replica: Replica
    http: httpx.Client
    username: str

    def start(self, project_id: int, options: dict | None = None) -> httpx.Response:
        return self.http.post(f"/api/projects/{project_id}/exports", json=options or {})

    def job(self, job_id: str) -> dict:
        r = self.http.get(f"/api/exports/{job_id}")
        assert r.status_code == 200, r.text
        return r.json()

    def wait_status(self, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.02)
        raise AssertionError(f"job {job_id} never reached {statuses}: {self.job(job_id)}")

    def websocket(self):
        cookie = "; ".join(f"{k}={v}" for k, v in self.http.cookies.items())
        url = self.replica.base_url.replace("http://", "ws://") + "/api/ws"
        return ws_connect(url, additional_headers={"Cookie": cookie}, open_timeout=10)

    def project_id(self) -> int:
        return int(self.http.get("/api/projects").json()[0]["id"])


@dataclass
class User:
    """A fresh user with a session on every replica of the cluster."""

    name: str
    sessions: list[Session] = field(default_factory=list)

    def on(self, index: int) -> Session:
        return self.sessions[index]


def new_user(cluster: Cluster) -> User:
    name, password = f"u{uuid.uuid4().hex[:10]}", uuid.uuid4().hex
    status, body = cluster.replicas[0].api("POST", "/api/test/users", {"username": name, "password": password})
    assert status == 200, body
    user = User(name)
    for replica in cluster.replicas:
        http = httpx.Client(base_url=replica.base_url, headers={"X-Requested-With": "cellhub"}, timeout=30)
        r = http.post("/api/session", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        user.sessions.append(Session(replica, http, name))
    return user


def hooks(cluster: Cluster, replica: int = 0, **controls) -> None:
    status, body = cluster.replicas[replica].api("POST", "/api/test/hooks", controls)
    assert status == 200, body


def job_state(cluster: Cluster, job_id: str, replica: int = 0) -> dict:
    status, body = cluster.replicas[replica].api("GET", f"/api/test/jobs/{job_id}")
    assert status == 200, body
    return body


def wait_state(cluster: Cluster, job_id: str, predicate, timeout: float = 60, replica: int = 0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = job_state(cluster, job_id, replica)
        if predicate(state):
            return state
        time.sleep(0.02)
    raise AssertionError(f"job {job_id}: {job_state(cluster, job_id, replica)}\n{cluster.logs()}")


def recv_events(ws, until, timeout: float = 60) -> list[dict]:
    """Events (pings skipped) until one satisfies ``until``."""
    got: list[dict] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        message = json.loads(ws.recv(timeout=max(0.01, deadline - time.monotonic())))
        if message.get("type") == "ping":
            continue
        got.append(message)
        if until(message):
            return got
    raise AssertionError(f"no matching event; got {got}")
