"""The data folder is private (issue 16, item 8): created 0700, every file in it 0600 (the
database and its WAL, images, thumbnails, archives), whatever the umask the commands were
started with; a folder an older version left world-readable is tightened at the next start."""
from __future__ import annotations

import io
import os
import re
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from testkit import free_port

ROOT = Path(__file__).resolve().parents[2]


def _loose_umask():
    os.umask(0o022)


def _modes(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix() or ".": stat.S_IMODE(p.stat().st_mode)
            for p in [folder, *folder.rglob("*")]}


def _assert_private(folder: Path) -> None:
    modes = _modes(folder)
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o700 if (folder / name).is_dir() else 0o600)}
    assert not wrong, wrong


def _run_server(data: Path):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "CELLHUB_TEST_HOOKS"}
    proc = subprocess.Popen([sys.executable, "-m", "server", "run", "--port", str(port), "--data-dir", str(data)],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=_loose_umask)
    url, deadline = None, time.monotonic() + 120
    while url is None and time.monotonic() < deadline:
        line = proc.stdout.readline()
        m = re.search(r"(http://\S+/login\?token=\S+)", line)
        url = m.group(1) if m else None
    assert url, "no sign-in link"
    for _ in range(200):
        try:
            httpx.get(f"http://127.0.0.1:{port}/signin")
            break
        except httpx.HTTPError:
            time.sleep(0.05)
    return proc, port, url


def test_everything_the_service_and_the_cli_write_is_private_whatever_the_umask(tmp_path):
    data = tmp_path / "data"
    proc, port, url = _run_server(data)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"X-Requested-With": "cellhub"},
                              timeout=60)
        assert client.get(url.replace(f"http://127.0.0.1:{port}", "")).status_code in (200, 303)
        buf = io.BytesIO()
        Image.fromarray(np.full((40, 50), 90, np.uint8)).save(buf, format="PNG")
        labels = np.zeros((40, 50), np.uint8)
        labels[5:15, 5:15] = 1
        lab = io.BytesIO()
        Image.fromarray(labels).save(lab, format="PNG")
        r = client.post("/api/projects/import", data={"format": "labels"},
                        files=[("images", ("a.png", buf.getvalue())), ("masks", ("a.png", lab.getvalue()))])
        assert r.status_code == 201, r.text
        pid = r.json()["project_id"]
        image_id = client.get(f"/api/projects/{pid}").json()["images"][0]["id"]
        assert client.get(f"/api/projects/{pid}/images/{image_id}/thumbnail").status_code == 200
        job = client.post(f"/api/projects/{pid}/exports", json={"annotation_formats": ["coco"],
                                                                "metrics_formats": ["csv"], "include_images": True,
                                                                "include_visualizations": True}).json()
        deadline = time.monotonic() + 120
        while client.get(f"/api/exports/{job['id']}").json()["status"] != "completed":
            assert time.monotonic() < deadline
            time.sleep(0.1)
        names = set(_modes(data))
        assert {"cellhub.sqlite3", "cellhub.sqlite3-wal", "thumbnails", "exports"} <= names, names
        assert any(n.startswith("exports/") and n.endswith(".zip") for n in names), names
        assert any(n.startswith("files/p") and n.endswith(".png") for n in names), names
        _assert_private(data)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    done = subprocess.run([sys.executable, "-m", "server", "users", "--data-dir", str(tmp_path / "users"), "add", "x"],
                          input="pw\n", text=True, capture_output=True, cwd=ROOT, preexec_fn=_loose_umask, timeout=60)
    assert done.returncode == 0, done.stderr
    _assert_private(tmp_path / "users")


def test_a_world_readable_data_folder_from_before_is_tightened_at_the_next_start(tmp_path):
    from tests.service.conftest import start_live

    data = tmp_path / "old"
    srv = start_live(data)
    srv.stop()
    for path in [data, *data.rglob("*")]:
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
    srv = start_live(data)
    try:
        _assert_private(data)
    finally:
        srv.stop()
