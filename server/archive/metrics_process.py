"""``MetricsFilesProcess``: ``metrics.csv``, ``metrics.json`` and ``metrics.xlsx`` written by a
child Python process from the rows the archive writer computes.

Why a process: turning rows into files is mostly Python (25,000 rows of 21 columns: the CSV
and JSON encoders about 1.3 s, the XLSX library 0.7 s; XlsxWriter, used before, took ~4 s). In
a thread that work would hold the GIL; in a child process (``python -m
server.archive.metrics_process``) it runs on another core while the parent goes on with the
annotations, images and overlays. The files are the
ones ``metrics_io``'s writers make in-process (the child runs those classes).

Protocol: the parent appends pickle frames to a spool file in its temporary folder, each
followed by one byte on the child's stdin (so the child knows a whole frame is there):
``(folder, formats, columns, meta, deflate)``, then ``("rows", [row, ...])`` any number of
times, then ``("close",)``. The child answers one pickle frame on its stdout, ``("ok",
{fmt: zipout.Deflated})`` once every file is complete (with ``deflate``, each file deflated for
the archive: the zlib work is done on the child's core too; else an empty dict), or ``("error", text, errno)`` (an ``OSError``'s errno, else
None). End of stdin before ``("close",)`` (the
parent discarded it or died) leaves no file. The rows wait in the spool file, not in memory
and not in the pipe: the parent never waits for the child while it computes the rows (a pipe
of pickled rows would make it wait for all but the last megabyte of them to be written), and
memory stays flat however many rows there are.

Cancellation: ``close(check)`` polls ``check()`` every 20 ms while the child finishes; whatever
it raises kills the child at once and removes its files, and so does ``discard()``. A child
that fails or dies raises ``MetricsProcessError`` with its message, or ``OSError`` with the
child's errno when that was its error (so a full disk reads as one).
"""
from __future__ import annotations

import os
import pickle
import shutil
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path
from typing import IO, Any, Callable, Optional, Sequence

from server.archive.metrics_io import ClosedOrDiscarded
from server.archive.zipout import Deflated, deflate_file

_ROOT = str(Path(__file__).resolve().parents[2])
_POLL_S = 0.02
FORMATS = ("csv", "json", "xlsx")


class MetricsProcessError(RuntimeError):
    """The child process writing the metrics files failed or died; the message says why."""


def metrics_file(folder: str | os.PathLike, fmt: str) -> Path:
    """Where the file of ``fmt`` (``csv``, ``json``, ``xlsx``) goes: ``folder/metrics.<fmt>``."""
    return Path(folder) / f"metrics.{fmt}"


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
            self._proc = subprocess.Popen([sys.executable, "-m", "server.archive.metrics_process", spool],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                                          cwd=_ROOT, env=env, start_new_session=True)
        except BaseException:
            self._cleanup()
            raise
        self._send((str(self.folder), self.formats, columns, meta or {}, deflate))

    def paths(self) -> dict[str, Path]:
        """``{fmt: path}`` of the files, in the order csv, json, xlsx (without ``deflate``)."""
        return {fmt: metrics_file(self.folder, fmt) for fmt in self.formats}

    def deflated(self) -> dict[str, Deflated]:
        """With ``deflate``, once closed: ``{fmt: zipout.Deflated}``, each file deflated for the
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
            self._send(("rows", [list(r) for r in rows]))

    def end_rows(self) -> None:
        """No more rows: the child finishes the files now, while the caller goes on (``close``
        then only waits for it). Further rows raise ``ValueError``; a second call does nothing."""
        if not self._ended and not self._done:
            try:
                self._send(("close",))
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
        if answer[0] != "ok":
            self._remove_files()
            raise _error(answer)
        self._deflated = answer[1] or {}

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

    def _send(self, frame: tuple) -> None:
        if self._done or self._ended:
            raise ValueError("the metrics files were already closed or discarded (or their rows ended)")
        pickle.dump(frame, self._spool, protocol=pickle.HIGHEST_PROTOCOL)
        self._spool.flush()  # the whole frame is in the file before the child hears of it
        try:
            self._proc.stdin.write(b".")
            self._proc.stdin.flush()
        except BrokenPipeError:
            self._proc.wait()
            answer = self._answer(self._proc.stdout.read())
            self.discard()
            raise _error(answer) from None

    def _wait(self, check: Optional[Callable[[], None]]) -> tuple:
        while True:
            try:
                out, _ = self._proc.communicate(timeout=_POLL_S if check else None)
                return self._answer(out)
            except subprocess.TimeoutExpired:
                check()

    def _answer(self, out: bytes) -> tuple:
        """The child's answer from ``out`` (its stdout, once it has exited): its frame, or
        ("error", why) if it died."""
        try:
            answer = pickle.loads(out)
        except Exception:  # noqa: BLE001 - no answer: the child died
            return ("error", self._failure())
        if self._proc.returncode != 0 and answer[0] == "ok":
            return ("error", f"the process exited with status {self._proc.returncode}")
        return answer

    def _failure(self) -> str:
        self._stderr.seek(0)
        tail = self._stderr.read().decode("utf-8", "replace").strip().splitlines()[-3:]
        code = self._proc.returncode
        return f"the metrics process exited with status {code}" + (f": {' | '.join(tail)}" if tail else "")

    def _remove_files(self) -> None:
        for path in self.paths().values():
            _remove(path)
            _remove(_deflated_file(path))

    def _cleanup(self) -> None:
        proc = self._proc
        for stream in (self._spool, self._stderr, proc and proc.stdin, proc and proc.stdout):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass  # unsent bytes for a child that is gone: nothing to deliver
        shutil.rmtree(self._work, ignore_errors=True)


def _error(answer: tuple) -> Exception:
    """The exception for the child's ``("error", text[, errno])`` answer: an ``OSError`` with
    the child's errno when it met one (a full disk reads as one), else ``MetricsProcessError``."""
    text = f"the metrics files could not be written: {answer[1]}"
    if len(answer) > 2 and answer[2]:
        return OSError(answer[2], text)
    return MetricsProcessError(text)


def _deflated_file(path: Path) -> Path:
    return path.with_name(path.name + ".deflate")


def _remove(path: Path) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def child_main(stdin: IO[bytes], stdout: IO[bytes], spool: IO[bytes]) -> int:
    """The child's loop (see the module docstring): frames from ``spool``, one per byte on
    ``stdin``. Returns the exit status."""
    from server.archive.metrics_io import CsvMetricsWriter, JsonMetricsWriter, XlsxMetricsWriter

    streams: list[IO[str]] = []
    writers: list = []
    xlsx = None
    folder, formats = None, []

    def drop() -> None:
        if xlsx is not None:
            xlsx.discard()
        for stream in streams:
            stream.close()
        for fmt in formats:
            _remove(metrics_file(folder, fmt))
            _remove(_deflated_file(metrics_file(folder, fmt)))

    def next_frame() -> Any:
        if not stdin.read(1):
            raise EOFError
        return pickle.load(spool)

    try:
        folder, formats, columns, meta, deflate = next_frame()
        for fmt in formats:
            if fmt == "xlsx":
                xlsx = XlsxMetricsWriter(str(metrics_file(folder, fmt)), columns)
                writers.append(xlsx)
                continue
            stream = open(metrics_file(folder, fmt), "w", encoding="utf-8", newline="")
            streams.append(stream)
            writers.append(CsvMetricsWriter(stream, columns) if fmt == "csv" else JsonMetricsWriter(stream, columns, meta))
        while True:
            try:
                frame = next_frame()
            except EOFError:
                drop()  # the parent gave up: no files
                return 0
            if frame[0] == "rows":
                for writer in writers:
                    writer.write_rows(frame[1])
            elif frame[0] == "close":
                for writer in writers:
                    writer.close()
                for stream in streams:
                    stream.close()
                deflated = {}
                for fmt in formats if deflate else ():
                    path = metrics_file(folder, fmt)
                    deflated[fmt] = deflate_file(str(path), str(_deflated_file(path)))
                    _remove(path)
                answer: tuple = ("ok", deflated)
                break
            else:
                raise ValueError(f"unknown frame {frame[0]!r}")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        try:
            drop()
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        answer = ("error", f"{type(exc).__name__}: {exc}", exc.errno if isinstance(exc, OSError) else None)
        traceback.print_exc()
    pickle.dump(answer, stdout)
    stdout.flush()
    return 0 if answer[0] == "ok" else 1


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as _spool:
        sys.exit(child_main(sys.stdin.buffer, sys.stdout.buffer, _spool))
