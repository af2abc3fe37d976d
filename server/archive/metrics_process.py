"""``MetricsFilesProcess``: ``metrics.csv``, ``metrics.json`` and ``metrics.xlsx`` written by a
child Python process (``metrics_child``) from the rows the archive writer computes; this is
the parent's side. The files are the ones ``metrics_io``'s writers make in-process (the child
runs those classes); what goes over the wire is ``metrics_protocol``. Why a process:
``server/DECISIONS.md``, "R2/R5 (metrics process)".

Cancellation: ``close(check)`` polls ``check()`` every 20 ms while the child finishes; whatever
it raises kills the child at once (SIGKILL) and removes its files, and so does ``discard()``.
A child that fails or dies raises ``MetricsProcessError`` with its message, or ``OSError`` with
the child's errno when that was its error (so a full disk reads as one).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

from server.archive.deflate import Deflated
from server.archive.metrics_io import ClosedOrDiscarded
from server.archive.metrics_protocol import (
    FORMATS, Answer, Close, Failed, Finished, Frame, Rows, Start, deflated_file, metrics_file, read_answer,
    remove_file, send_frame,
)

__all__ = ["FORMATS", "MetricsFilesProcess", "MetricsProcessError", "metrics_file"]

_ROOT = str(Path(__file__).resolve().parents[2])
_POLL_S = 0.02


class MetricsProcessError(RuntimeError):
    """The child process writing the metrics files failed or died; the message says why."""


class MetricsFilesProcess(ClosedOrDiscarded):
    """Writes ``metrics.<fmt>`` into ``folder`` for each of ``formats`` (``csv``: RFC 4180,
    ``json``, ``xlsx``: see ``metrics_io``) in a child process. ``columns``:
    ``metrics.column_docs``; ``meta``: the JSON file's extra keys (``pixel_size_um``,
    ``length_unit``); ``tmpdir``: where the child's temporary files go; ``deflate``: the child
    also deflates each finished file for the archive (``deflated()``). Interface:
    ``write_rows`` / ``write``, ``end_rows()``, ``close(check)``, ``discard()``, context manager (closes on a
    normal exit, discards on an exception). The files are complete only after ``close``.

    Raises ``MetricsProcessError`` from any call if the child failed (its error text, or the
    tail of its stderr if it died), ``OSError`` (the child's errno) if its error was one;
    ``OSError`` if it cannot be started; ``ValueError`` for
    an unknown format or rows after ``close``/``discard``."""

    def __init__(self, folder: str | os.PathLike, formats: Sequence[str], columns: list[dict],
                 meta: Optional[dict[str, Any]] = None, tmpdir: Optional[str] = None,
                 deflate: bool = False) -> None:
        unknown = [f for f in formats if f not in FORMATS]
        if unknown:
            raise ValueError(f"unknown metrics formats {unknown}; known: {', '.join(FORMATS)}")
        # Absolute: the child runs in the repository's folder, not the caller's.
        self.folder = Path(os.path.abspath(folder))
        self.formats = [f for f in FORMATS if f in formats]  # the archive's member order
        self.names = [c["name"] for c in columns]
        self.deflate = deflate
        self._deflated: dict[str, Deflated] = {}
        self._done = self._ended = False
        self._work = os.path.abspath(tempfile.mkdtemp(prefix="metrics-process-", dir=tmpdir))
        self._stderr = self._spool = self._proc = None
        try:
            self._stderr = open(os.path.join(self._work, "stderr.txt"), "w+b")
            spool = os.path.join(self._work, "rows.pickles")
            self._spool = open(spool, "wb")
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
            env["TMPDIR"] = self._work  # the XLSX library's temporary file (unnamed: gone with the child)
            # Its own session: a Ctrl+C at the server's terminal is the server's to handle (the
            # runner keeps an interrupted job for a re-run, R7); the child ends when its
            # stdin does, or when it is killed.
            self._proc = subprocess.Popen([sys.executable, "-m", "server.archive.metrics_child", spool],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                          cwd=_ROOT, env=env, start_new_session=True)
        except BaseException:
            self._cleanup()
            raise
        self._send(Start(str(self.folder), self.formats, columns, meta or {}, deflate))

    def paths(self) -> dict[str, Path]:
        """``{fmt: path}`` of the files, in the order csv, json, xlsx (without ``deflate``)."""
        return {fmt: metrics_file(self.folder, fmt) for fmt in self.formats}

    def deflated(self) -> dict[str, Deflated]:
        """With ``deflate``, once closed: ``{fmt: deflate.Deflated}``, each file deflated for the
        archive (``folder/metrics.<fmt>.deflate``; the plain file is not kept), in the order
        csv, json, xlsx. Raises ``ValueError`` before ``close`` or without ``deflate``."""
        if not self.deflate or not self._done or set(self._deflated) != set(self.formats):
            raise ValueError("no deflated metrics files: not closed, or not asked for")
        return {fmt: self._deflated[fmt] for fmt in self.formats}

    def write(self, row: dict[str, Any]) -> None:
        self.write_rows([[row.get(n) for n in self.names]])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as value lists in column order: ``int``/``float`` as numbers, ``str`` as text,
        ``None`` as no value (see ``metrics_io``)."""
        if rows:
            self._send(Rows([list(r) for r in rows]))

    def end_rows(self) -> None:
        """No more rows: the child finishes the files now, while the caller goes on (``close``
        then only waits for it). Further rows raise ``ValueError``; a second call does nothing."""
        if not self._ended and not self._done:
            try:
                self._send(Close())
            except BaseException:
                self.discard()
                raise
            self._ended = True

    def close(self, check: Optional[Callable[[], None]] = None) -> None:
        """Let the child finish the files (``end_rows``) and wait for it, calling ``check()``
        every 20 ms; whatever ``check`` raises discards the files (the child is killed, nothing
        is left) and propagates."""
        if self._done:
            return
        self.end_rows()
        try:
            answer = self._wait(check)
        except BaseException:
            self.discard()
            raise
        self._done = True
        self._cleanup()
        if isinstance(answer, Failed):
            self._remove_files()
            raise _error(answer)
        self._deflated = dict(answer.deflated)

    def discard(self) -> None:
        """Kill the child, remove its files and every temporary file."""
        if self._done:
            return
        self._done = True
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        self._remove_files()
        self._cleanup()

    def _send(self, frame: Frame) -> None:
        if self._done or self._ended:
            raise ValueError("the metrics files were already closed or discarded (or their rows ended)")
        try:
            send_frame(self._spool, self._proc.stdin, frame)
        except BrokenPipeError:
            self._proc.wait()
            answer = self._answer(self._proc.stdout.read())
            self.discard()
            raise _error(answer) from None

    def _wait(self, check: Optional[Callable[[], None]]) -> Answer:
        while True:
            try:
                out, _ = self._proc.communicate(timeout=_POLL_S if check else None)
                return self._answer(out)
            except subprocess.TimeoutExpired:
                check()

    def _answer(self, out: bytes) -> Answer:
        """The child's answer from ``out`` (its whole stdout, once it has exited), or a
        ``Failed`` saying how it ended if it gave none (it died) or exited badly."""
        answer = read_answer(out)
        if answer is None:
            return Failed(self._failure())
        if self._proc.returncode != 0 and isinstance(answer, Finished):
            return Failed(f"the process exited with status {self._proc.returncode}")
        return answer

    def _failure(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        code = self._proc.returncode
        return f"the metrics process exited with status {code}" + (f": {' | '.join(tail)}" if tail else "")

    def _remove_files(self) -> None:
        for path in self.paths().values():
            remove_file(path)
            remove_file(deflated_file(path))

    def _cleanup(self) -> None:
        proc = self._proc
        for stream in (self._spool, self._stderr, proc and proc.stdin, proc and proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass  # unsent bytes for a child that is gone: nothing to deliver
        shutil.rmtree(self._work, ignore_errors=True)


def _error(answer: Failed) -> Exception:
    """The exception for the child's ``Failed``: an ``OSError`` with the child's errno when it
    met one (a full disk reads as one), else ``MetricsProcessError``."""
    text = f"the metrics files could not be written: {answer.text}"
    if answer.errno:
        return OSError(answer.errno, text)
    return MetricsProcessError(text)
