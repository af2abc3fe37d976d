"""What the page's build artefacts share (the bytecode bundle, ``server.bytecode``, and the
memory snapshot, ``server.snapshot``): built once per set of sources by the vendored Pyodide
under Node.js, named by a hash of those sources, kept in a cache folder shared by servers.
See ``CachedBuild``."""
from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
import threading
import time
from pathlib import Path
from typing import Iterable, Optional


class CachedBuild:
    """An artefact made by ``_produce`` from the inputs ``_key_parts`` lists; its files are
    named by the first 32 hex digits of SHA-256 over those inputs, so one is never served
    for other sources.

    Built in a background thread the first time ``ready()`` finds none (once per server;
    ``build()`` builds in the caller's thread, as the set-up does), and kept in
    ``cache_dir()``: ``$CELLHUB_<KIND>_DIR``, else ``$XDG_CACHE_HOME/cellhub-export/<kind>``
    (``~/.cache/...``). A lock file there makes concurrent servers build it once; the
    newest ``KEEP`` are kept. Without Node.js or the vendored Pyodide, or with
    ``CELLHUB_<KIND>=0``, there is none, and the page boots without it."""

    KIND = ""
    SUFFIXES: tuple[str, ...] = ()
    """The files of one build, ``<key><suffix>``; the first is written last (it marks a build done)."""
    KEEP = 6
    TIMEOUT_S = 600

    def __init__(self, pyodide_dir: Path) -> None:
        self.pyodide_dir = pyodide_dir
        self.enabled = os.environ.get(f"CELLHUB_{self.KIND.upper()}", "1") != "0"
        self._key: Optional[str] = None
        self._lock = threading.Lock()
        self._building = False
        self._failed = False  # one failed build per server is enough to know

    def _key_parts(self) -> Iterable[bytes]:
        raise NotImplementedError

    def _produce(self, tmp: Path) -> dict[str, bytes]:
        """The build's files by suffix (``SUFFIXES``), made in the temporary folder ``tmp``.
        Raises ``BuildFailed`` (its reason is printed) or ``OSError``."""
        raise NotImplementedError

    def cache_dir(self) -> Path:
        name = f"CELLHUB_{self.KIND.upper()}_DIR"
        if os.environ.get(name):
            return Path(os.environ[name])
        cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        return cache / "cellhub-export" / self.KIND

    @property
    def key(self) -> str:
        if self._key is None:
            digest = hashlib.sha256()
            for part in self._key_parts():
                digest.update(len(part).to_bytes(8, "little"))
                digest.update(part)
            self._key = digest.hexdigest()[:32]
        return self._key

    def file(self, suffix: str) -> Path:
        return self.cache_dir() / f"{self.key}{suffix}"

    @property
    def path(self) -> Path:
        """The file whose presence says the build is done."""
        return self.file(self.SUFFIXES[0])

    def ready(self) -> bool:
        """True once built; otherwise False, and a build starts (once per server, if it can)."""
        if not self.enabled:
            return False
        if self.path.is_file():
            return True
        if self._claim_build():
            threading.Thread(target=self._build, name=f"{self.KIND}-build", daemon=True).start()
        return False

    def build(self) -> bool:
        """Build now, in this thread, unless it is there. True when it is there afterwards;
        False when disabled, without Node.js or the vendored Pyodide, or when the build
        failed (its reason is printed)."""
        if not self.enabled:
            return False
        if self.path.is_file():
            return True
        if not self._claim_build():
            return False
        self._build()
        return self.path.is_file()

    def _claim_build(self) -> bool:
        with self._lock:
            if (self._building or self._failed or not shutil.which("node")
                    or not (self.pyodide_dir / "pyodide.mjs").is_file()):
                return False
            self._building = True
            return True

    def _build(self) -> None:
        lock: Optional[Path] = None
        try:
            folder = self.cache_dir()
            folder.mkdir(parents=True, exist_ok=True)
            claim = folder / f"{self.key}.lock"
            if claim.exists() and time.time() - claim.stat().st_mtime > self.TIMEOUT_S:
                claim.unlink(missing_ok=True)  # its builder died
            try:
                os.close(os.open(claim, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
            except FileExistsError:
                return  # another server builds it; ready() finds it once it is there
            lock = claim
            with tempfile.TemporaryDirectory(prefix=f"cellhub-{self.KIND}-") as tmp:
                files = self._produce(Path(tmp))
            for suffix in reversed(self.SUFFIXES):
                staged = folder / f"{self.key}.{os.getpid()}.tmp"
                staged.write_bytes(files[suffix])
                os.replace(staged, self.file(suffix))
            done = sorted((p for p in folder.glob(f"*{self.SUFFIXES[0]}") if len(p.name) == 32 + len(self.SUFFIXES[0])),
                          key=lambda p: p.stat().st_mtime)
            for old in done[:-self.KEEP]:
                for suffix in self.SUFFIXES:
                    (folder / (old.name[:-len(self.SUFFIXES[0])] + suffix)).unlink(missing_ok=True)
        except (BuildFailed, OSError) as exc:
            self._failed = True
            print(f"[cellhub] {self.KIND} not built: {exc}", flush=True)
        finally:
            if lock is not None:
                lock.unlink(missing_ok=True)
            with self._lock:
                self._building = False


class BuildFailed(Exception):
    """The builder ran and failed; the message says why."""


def file_digest(path: Path) -> bytes:
    """The file's name and SHA-256 (``b"-"`` for a missing file), for a build's key."""
    if not path.is_file():
        return path.name.encode() + b"-"
    with path.open("rb") as fh:
        return path.name.encode() + hashlib.file_digest(fh, "sha256").digest()
