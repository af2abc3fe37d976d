"""The hub offers the client to Pyodide (issue 21): ``/static/wheels/client/wheels.json``
lists the client's wheel, its pure-Python dependencies pinned in ``client-requirements.txt``
and the page's pydantic wheels; every one is served, and the served client wheel was built
from this checkout's sources (the set-up rebuilds it when they change)."""
from __future__ import annotations

import hashlib
import io
import re
import zipfile
from pathlib import Path

import httpx

from tests.service.conftest import Live

ROOT = Path(__file__).resolve().parents[2]


def pinned() -> dict[str, str]:
    """``{distribution: sha256}`` of ``client-requirements.txt``."""
    out = {}
    for line in (ROOT / "client-requirements.txt").read_text().splitlines():
        match = re.match(r"([A-Za-z0-9_.-]+)==\S+ --hash=sha256:([0-9a-f]{64})$", line.strip())
        if match:
            out[match.group(1).lower().replace("-", "_")] = match.group(2)
    return out


def test_the_hub_serves_the_client_and_its_pinned_dependencies(live_server: Live):
    base = live_server.base_url + "/static/wheels/"
    listed = httpx.get(base + "client/wheels.json").json()
    page = httpx.get(base + "wheels.json").json()
    assert listed[-len(page):] == page  # the page's pydantic wheels come with it
    mine = [name for name in listed if name.startswith("client/")]
    assert {name.split("/")[1].split("-")[0].lower() for name in mine} == set(pinned()) | {"cellhub_client"}
    for name in mine:
        answer = httpx.get(base + name)
        assert answer.status_code == 200 and answer.headers["cache-control"].endswith("immutable")
        dist = name.split("/")[1].split("-")[0].lower()
        if dist in pinned():
            assert hashlib.sha256(answer.content).hexdigest() == pinned()[dist], name
            assert name.endswith("-py3-none-any.whl"), name  # pure Python, whatever the Pyodide
        else:
            with zipfile.ZipFile(io.BytesIO(answer.content)) as wheel:
                for shared in ("models.py", "errors.py", "routes.py"):
                    assert wheel.read(f"cellhub_client/shared/{shared}") == (ROOT / "app" / shared).read_bytes()
                for source in sorted((ROOT / "client" / "cellhub_client").rglob("*.py")):
                    member = source.relative_to(ROOT / "client").as_posix()
                    assert wheel.read(member) == source.read_bytes(), f"{member}: run scripts/setup.sh"
