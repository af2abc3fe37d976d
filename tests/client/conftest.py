"""Fixtures of the client tests: the client as its wheel, built from ``client/`` and installed
into a temporary folder (so the tests use what users install, with the page's shared modules
inside it, and nothing of the server), a real server with a user and an API token, and the
faulty network of ``testkit.cutting_proxy``."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Optional

import httpx
import pytest

from testkit.cutting_proxy import CuttingProxy
from tests.service.conftest import Client as HttpUser
from tests.service.conftest import Live, start_live

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def client_site(tmp_path_factory) -> Path:
    """The client's wheel, built from this checkout and installed (no dependencies) into a
    folder of its own; that folder is what ``import cellhub_client`` finds."""
    out = tmp_path_factory.mktemp("client-wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(ROOT / "client"), "-w", str(out)],
                   check=True, capture_output=True)
    wheel = next(out.glob("cellhub_client-*.whl"))
    site = out / "site"
    subprocess.run([*pip, "install", "--no-deps", "--target", str(site), str(wheel)], check=True, capture_output=True)
    return site


@pytest.fixture(scope="session")
def cellhub(client_site) -> Iterator[Any]:
    """The ``cellhub_client`` package of the installed wheel."""
    sys.path.insert(0, str(client_site))
    try:
        import cellhub_client

        assert Path(cellhub_client.__file__).is_relative_to(client_site)
        yield cellhub_client
    finally:
        sys.path.remove(str(client_site))


@dataclass
class Hub:
    """A live server, one user (cookie session ``user``) and an API token of that user."""

    live: Live
    user: HttpUser
    token: str

    @property
    def url(self) -> str:
        return self.live.base_url

    @property
    def project_id(self) -> int:
        return self.live.project_id

    def hooks(self, **controls: Any) -> None:
        r = httpx.post(self.url + "/api/test/hooks", json=controls)
        assert r.status_code == 200, r.text

    def job_state(self, job_id: str) -> dict:
        """The test hooks' view: status, delivered, archive on disk, its sha256, downloads."""
        return httpx.get(f"{self.url}/api/test/jobs/{job_id}").json()

    def history(self) -> list[dict]:
        return self.user.http.get(f"/api/projects/{self.project_id}/exports").json()

    def wait_job(self, job_id: str, statuses: set[str], timeout: float = 60) -> dict:
        return self.user.wait_status(job_id, statuses, timeout)

    def proxy(self) -> CuttingProxy:
        return CuttingProxy(int(self.url.rsplit(":", 1)[1]))


def new_token(user: HttpUser, name: str = "tests") -> str:
    r = user.http.post("/api/tokens", json={"name": name})
    assert r.status_code == 201, r.text
    return r.json()["token"]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory) -> Iterator[Live]:
    srv = start_live(tmp_path_factory.mktemp("hub") / "data")
    yield srv
    srv.stop()


@pytest.fixture
def hub(live_server: Live) -> Iterator[Hub]:
    """A fresh user and token on the module's server; hooks reset afterwards."""
    user = live_server.new_user()
    yield Hub(live_server, user, new_token(user))
    httpx.post(live_server.base_url + "/api/test/reset")


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def leftovers(folder: Path) -> list[str]:
    """Files in ``folder``: after an interrupted or refused download there must be none."""
    return sorted(p.name for p in folder.iterdir())


def interrupt_main_when(event: threading.Event, delay: float = 0.0, timeout: float = 60) -> threading.Thread:
    """Send SIGINT (Ctrl+C) to the main thread once ``event`` is set (plus ``delay``), as a
    terminal does: a blocking read in the main thread is interrupted and raises
    ``KeyboardInterrupt`` there. The caller must be inside ``pytest.raises`` by then."""
    def fire() -> None:
        if event.wait(timeout):
            time.sleep(delay)
            signal.pthread_kill(threading.main_thread().ident, signal.SIGINT)

    thread = threading.Thread(target=fire, daemon=True)
    thread.start()
    return thread


def client_env(site: Path, token: Optional[str], **extra: str) -> dict[str, str]:
    """The environment of a CLI run: only the installed wheel on the path, the token (if any),
    no config file of the machine's user."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELLHUB_", "PYTHON"))}
    env.update(PYTHONPATH=str(site), XDG_CONFIG_HOME=str(site / "no-config"), **extra)
    if token is not None:
        env["CELLHUB_TOKEN"] = token
    return env
