"""A real uvicorn server on a free port over a fresh data directory (real SQLite file), run
in a background thread, with HTTP (httpx) and WebSocket (websockets) clients per user."""
from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
import uvicorn

from server import accounts, auth, project_store
from server.cli import UVICORN_OPTIONS
from server.web import Settings, create_app
from testkit import free_port
from testkit.api_session import JobsOverHttp


@dataclass
class Live:
    app: Any
    base_url: str
    data_dir: Path
    server: uvicorn.Server
    thread: threading.Thread

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=20)

    def new_user(self) -> "Client":
        name = f"u{uuid.uuid4().hex[:8]}"
        password = uuid.uuid4().hex
        auth.add_user(self.app.state.db, name, password)
        client = Client(self, httpx.Client(base_url=self.base_url, headers={"X-Requested-With": "cellhub"}, timeout=30))
        r = client.http.post("/api/session", json={"username": name, "password": password})
        assert r.status_code == 200, r.text
        client.username = name
        return client

    def add_project(self, owner: "Client", name: str = "Private nuclei", images: int = 1, public: bool = False) -> int:
        """A new project of ``images`` small synthetic images owned by ``owner``; its id."""
        from server.demo import generate_demo
        from server.projects import persist_project

        demo = generate_demo(n_images=images, size=64)
        demo.project.name = name
        sources = [demo.image_bytes[image.id] for image in demo.project.images]
        db = self.app.state.db
        return persist_project(db, self.app.state.files_root, demo.project, sources,
                               owner_id=accounts.user_id(db, owner.username), public=public)

    @property
    def project_id(self) -> int:
        return project_store.list_projects(self.app.state.db)[0]["id"]


@dataclass
class Client(JobsOverHttp):
    live: Live
    http: httpx.Client
    username: str = ""

    def start(self, options: dict | None = None, project_id: int | None = None) -> httpx.Response:
        pid = project_id if project_id is not None else self.live.project_id
        return self.http.post(f"/api/projects/{pid}/exports", json=options or {})


def start_live(data_dir: Path, **settings: Any) -> Live:
    opts = dict(test_hooks=True, demo_images=3, demo_size=256, workers=2)
    opts.update(settings)
    app = create_app(Settings(data_dir=data_dir, **opts))
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", **UVICORN_OPTIONS)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("server did not start")
        time.sleep(0.02)
    return Live(app, f"http://127.0.0.1:{port}", data_dir, server, thread)


@pytest.fixture
def live(tmp_path) -> Iterator[Live]:
    srv = start_live(tmp_path / "data")
    yield srv
    srv.stop()

