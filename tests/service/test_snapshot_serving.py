"""The memory snapshot as the real server hands it out (``server.routes.snapshot``): the
boot module ``/pyscript.toml`` names, the snapshot by ``Accept-Encoding`` with long-lived
cache headers, nothing for another key, and nothing at all when it is turned off. The
snapshot files here are stand-ins written where a build leaves its files; the real build
is tested in ``tests/test_snapshot_build.py`` and restored in Chromium by the e2e suite."""
from __future__ import annotations

import gzip
import re

import httpx
import pytest
import zstandard

from server.snapshot import encoding_for
from server.page_assets import page_bytecode_bundle, page_snapshot
from tests.service.conftest import start_live

PAYLOAD = b"cellhub-snapshot-1\n" + bytes(range(256)) * 64
STDLIB = b"PK\x05\x06" + bytes(18)  # an empty zip
MEMORY = bytes(range(255, -1, -1)) * 64


@pytest.fixture
def built(tmp_path, monkeypatch):
    """A live server whose snapshot is 'built' (its two files in the cache folder)."""
    monkeypatch.setenv("CELLHUB_SNAPSHOT_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CELLHUB_SNAPSHOT", "1")
    snapshot = page_snapshot()
    (tmp_path / "cache").mkdir()
    snapshot.file(".zst").write_bytes(zstandard.ZstdCompressor().compress(PAYLOAD))
    snapshot.file(".gz").write_bytes(gzip.compress(PAYLOAD))
    snapshot.file("-stdlib.zip").write_bytes(STDLIB)
    snapshot.file("-memory.zst").write_bytes(zstandard.ZstdCompressor().compress(MEMORY))
    snapshot.file("-memory.gz").write_bytes(gzip.compress(MEMORY))
    live = start_live(tmp_path / "data")
    yield live, snapshot
    live.stop()


def test_accept_encoding_picks_zstd_then_gzip_and_honours_q_zero():
    assert encoding_for("gzip, deflate, br, zstd") == "zstd"
    assert encoding_for("gzip, deflate") == "gzip"
    assert encoding_for("zstd;q=0, gzip;q=0.5") == "gzip"
    assert encoding_for("zstd;q=0.0") is None
    assert encoding_for("identity") is None and encoding_for(None) is None


def test_the_snapshot_is_served_compressed_by_accept_encoding_and_cached_for_good(built):
    live, snapshot = built
    for coding in ("zstd", "gzip"):
        for part, content in (("", PAYLOAD), ("-memory", MEMORY)):
            r = httpx.get(f"{live.base_url}/snapshot-{snapshot.key}{part}.bin", headers={"Accept-Encoding": coding})
            assert r.status_code == 200 and r.headers["content-encoding"] == coding
            assert r.content == content  # httpx decodes both codings
            assert r.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert r.headers["vary"] == "Accept-Encoding"
    other = "0" * 32
    assert httpx.get(f"{live.base_url}/snapshot-{other}.bin", headers={"Accept-Encoding": "zstd"}).status_code == 404
    assert httpx.get(f"{live.base_url}/snapshot-{other}-memory.bin",
                     headers={"Accept-Encoding": "zstd"}).status_code == 404
    stdlib = httpx.get(f"{live.base_url}/snapshot-{snapshot.key}-stdlib.zip")
    assert stdlib.status_code == 200 and stdlib.content == STDLIB
    assert stdlib.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert httpx.get(f"{live.base_url}/snapshot-{other}-stdlib.zip").status_code == 404
    assert httpx.get(f"{live.base_url}/snapshot-{snapshot.key}.bin",
                     headers={"Accept-Encoding": "identity"}).status_code == 404


def test_the_page_config_names_the_boot_module_which_offers_the_snapshot(built):
    live, snapshot = built
    toml = httpx.get(f"{live.base_url}/pyscript.toml").text
    assert 'interpreter = "/boot/pyodide.mjs"' in toml and re.search(r'"/app-[0-9a-f]{16}\.zip"', toml)
    r = httpx.get(f"{live.base_url}/boot/pyodide.mjs", headers={"Accept-Encoding": "gzip, zstd"})
    assert r.headers["content-type"].startswith("text/javascript") and r.headers["cache-control"] == "no-cache"
    assert f'"snapshot": "/snapshot-{snapshot.key}.bin"' in r.text
    assert f'"stdlib": "/snapshot-{snapshot.key}-stdlib.zip"' in r.text
    assert f'"memory": "/snapshot-{snapshot.key}-memory.bin"' in r.text
    assert 'export * from "/static/vendor/pyodide/314.0.7/pyodide.mjs"' in r.text
    assert '"indexURL": "/static/vendor/pyodide/314.0.7/"' in r.text
    # A client that takes no coding the server stores gets the plain boot.
    plain = httpx.get(f"{live.base_url}/boot/pyodide.mjs", headers={"Accept-Encoding": "identity"})
    assert '"snapshot": null' in plain.text and '"stdlib": null' in plain.text


def test_turned_off_there_is_no_snapshot_and_no_build(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLHUB_SNAPSHOT_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("CELLHUB_SNAPSHOT", "0")
    live = start_live(tmp_path / "data")
    try:
        key = page_snapshot().key
        assert '"snapshot": null' in httpx.get(f"{live.base_url}/boot/pyodide.mjs").text
        assert httpx.get(f"{live.base_url}/snapshot-{key}.bin", headers={"Accept-Encoding": "zstd"}).status_code == 404
        assert httpx.get(f"{live.base_url}/snapshot-{key}-stdlib.zip").status_code == 404
        assert not (tmp_path / "cache").exists()
    finally:
        live.stop()


def test_the_bytecode_bundle_is_sent_gzip_only_to_clients_that_take_gzip(tmp_path, monkeypatch):
    """A client that takes no gzip (``Accept-Encoding: identity``, also the one the server
    offers no snapshot) gets the bundle's bytes as they are; Chromium refuses a coding it did
    not ask for (net::ERR_CONTENT_DECODING_FAILED)."""
    monkeypatch.setenv("CELLHUB_BYTECODE_DIR", str(tmp_path / "bytecode"))
    monkeypatch.setenv("CELLHUB_BYTECODE", "1")
    bundle = page_bytecode_bundle()
    bundle.path.parent.mkdir(parents=True)
    bundle.path.write_bytes(gzip.compress(PAYLOAD))
    live = start_live(tmp_path / "data")
    try:
        url = f"{live.base_url}/bytecode-{bundle.key}.bin"
        plain = httpx.get(url, headers={"Accept-Encoding": "identity"})
        assert plain.status_code == 200 and "content-encoding" not in plain.headers
        assert plain.content == PAYLOAD and "accept-encoding" in plain.headers["vary"].lower()
        zipped = httpx.get(url, headers={"Accept-Encoding": "gzip, zstd"})
        assert zipped.headers["content-encoding"] == "gzip" and zipped.content == PAYLOAD
        assert "immutable" in plain.headers["cache-control"] and "immutable" in zipped.headers["cache-control"]
    finally:
        live.stop()
