"""``server.cached_build.CachedBuild``: one build per key, its files named by the key, the
newest ``KEEP`` builds kept whole (the snapshot writes files whose suffixes share an ending)."""
from __future__ import annotations

import os
import time
from pathlib import Path

from server.cached_build import CachedBuild


class TwoFiles(CachedBuild):
    KIND = "twofiles"
    SUFFIXES = (".bin", "-part.bin")

    def __init__(self, pyodide_dir: Path, version: int) -> None:
        super().__init__(pyodide_dir)
        self.version = version

    def _key_parts(self):
        yield str(self.version).encode()

    def _produce(self, tmp: Path) -> dict[str, bytes]:
        return {".bin": b"whole %d" % self.version, "-part.bin": b"part %d" % self.version}


def test_the_newest_builds_are_kept_with_all_their_files(tmp_path, monkeypatch):
    monkeypatch.setenv("CELLHUB_TWOFILES_DIR", str(tmp_path / "cache"))
    pyodide = tmp_path / "pyodide"
    pyodide.mkdir()
    (pyodide / "pyodide.mjs").write_text("")  # a build needs the vendored Pyodide (and node)
    builds = [TwoFiles(pyodide, version) for version in range(CachedBuild.KEEP + 2)]
    for n, build in enumerate(builds):
        assert build.build()
        stamp = time.time() - 100 + n  # distinct times, oldest first
        for suffix in TwoFiles.SUFFIXES:
            os.utime(build.file(suffix), (stamp, stamp))
    assert builds[-1].build()  # already there: nothing is built or pruned
    TwoFiles(pyodide, 99).build()  # one more build prunes the oldest beyond KEEP
    kept = [b for b in [*builds, TwoFiles(pyodide, 99)] if b.path.is_file()]
    assert [b.version for b in kept] == [*range(3, CachedBuild.KEEP + 2), 99]
    for build in kept:
        assert build.file("-part.bin").read_bytes() == b"part %d" % build.version
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == sorted(
        b.key + suffix for b in kept for suffix in TwoFiles.SUFFIXES)
