"""Fixtures of the cluster tests (issue 20): a private PostgreSQL per module, and for the
process tests a whole cluster (``testkit.cluster``: 2 web replicas, 2 workers, one shared
temporary folder) per module, with users signed in on several replicas at once."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Iterator

import httpx
import pytest

from testkit.api_session import JobsOverHttp
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
class Session(JobsOverHttp):
    """One user signed in on one replica."""

    replica: Replica
    http: httpx.Client
    username: str

    def start(self, project_id: int, options: dict | None = None) -> httpx.Response:
        return self.http.post(f"/api/projects/{project_id}/exports", json=options or {})

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

