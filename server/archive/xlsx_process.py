"""``XlsxProcessWriter``: ``metrics.xlsx`` written by XlsxWriter in a child Python process.

Why a process: XlsxWriter is pure Python and costs about 8 us a cell (25,000 rows of 21
columns take ~4 s), as much as everything else the archive writer does for those objects.
In a thread it would hold the GIL; in a child process (``python -m
server.archive.xlsx_process``) it runs on another core while the parent computes the
metrics, writes the other members and deflates them. The workbook is exactly what
``metrics_io.XlsxMetricsWriter`` writes in-process (the child runs that class).

Protocol (pickle frames): the parent writes ``(target, columns, tmpdir)``, then ``("rows",
[row, ...])`` any number of times, then ``("close",)``, into the child's stdin; the child
answers one frame on its stdout, ``("ok", None)`` once the workbook is complete, or
``("error", text)``. End of input without ``("close",)`` (the parent discarded it or died)
drops the workbook unwritten. Rows are buffered by the pipe (enlarged to 1 MiB where Linux
allows), so the parent rarely waits for the child; when it does, it is for one buffer's
worth of rows (milliseconds).

Cancellation: ``close(check)`` polls ``check()`` every 20 ms while the child assembles the
workbook; whatever it raises kills the child at once and removes its files, and so does
``discard()``. A child that fails or dies raises ``XlsxProcessError`` with its message.
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

_ROOT = str(Path(__file__).resolve().parents[2])
_POLL_S = 0.02
_PIPE_BYTES = 1 << 20
_F_SETPIPE_SZ = 1031  # Linux fcntl: set a pipe's capacity


class XlsxProcessError(RuntimeError):
    """The child process writing ``metrics.xlsx`` failed or died; the message says why."""


class XlsxProcessWriter:
    """The interface of ``metrics_io.XlsxMetricsWriter`` (``write_rows``, ``write``,
    ``close(check)``, ``discard()``, context manager), with XlsxWriter run in a child
    process. ``target``: the .xlsx file name, complete only after ``close`` returns;
    ``columns``: ``metrics.column_docs``; ``tmpdir``: where the child's temporary files go.

    Raises ``XlsxProcessError`` from any call if the child failed (its error text, or the
    tail of its stderr if it died); ``OSError`` if the child cannot be started."""

    def __init__(self, target: str, columns: list[dict], tmpdir: Optional[str] = None) -> None:
        self.target = str(target)
        self.names = [c["name"] for c in columns]
        self._work = tempfile.mkdtemp(prefix="xlsx-process-", dir=tmpdir)
        self._stderr = open(os.path.join(self._work, "stderr.txt"), "w+b")
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (_ROOT, env.get("PYTHONPATH", "")) if p)
        self._proc = subprocess.Popen([sys.executable, "-m", "server.archive.xlsx_process"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=self._stderr, cwd=_ROOT, env=env)
        _enlarge_pipe(self._proc.stdin)
        self._done = False
        self._send((self.target, columns, self._work))

    def write(self, row: dict[str, Any]) -> None:
        self.write_rows([[row.get(n) for n in self.names]])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as value lists in column order (see ``XlsxMetricsWriter.write_rows``)."""
        if rows:
            self._send(("rows", [list(r) for r in rows]))

    def close(self, check: Optional[Callable[[], None]] = None) -> None:
        """Let the child assemble the workbook into ``target`` and wait for it, calling
        ``check()`` every 20 ms; whatever ``check`` raises discards the workbook (the child
        is killed, nothing is left) and propagates."""
        if self._done:
            return
        self._send(("close",))
        try:
            answer = self._wait(check)
        except BaseException:
            self.discard()
            raise
        self._done = True
        self._cleanup()
        if answer[0] != "ok":
            _remove(self.target)
            raise XlsxProcessError(f"metrics.xlsx could not be written: {answer[1]}")

    def discard(self) -> None:
        """Kill the child, drop the workbook (``target`` removed) and every temporary file."""
        if self._done:
            return
        self._done = True
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait()
        _remove(self.target)
        self._cleanup()

    def __enter__(self) -> "XlsxProcessWriter":
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()

    def _send(self, frame: tuple) -> None:
        if self._done:
            raise ValueError("the workbook was already closed or discarded")
        try:
            pickle.dump(frame, self._proc.stdin, protocol=pickle.HIGHEST_PROTOCOL)
            if frame[0] != "rows":
                self._proc.stdin.flush()
        except BrokenPipeError:
            self._proc.wait()
            failure = self._failure()
            self.discard()
            raise XlsxProcessError(f"metrics.xlsx could not be written: {failure}") from None

    def _wait(self, check: Optional[Callable[[], None]]) -> tuple:
        out = b""
        while True:
            try:
                out, _ = self._proc.communicate(timeout=_POLL_S if check else None)
                break
            except subprocess.TimeoutExpired:
                check()
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
        return f"the XlsxWriter process exited with status {code}" + (f": {' | '.join(tail)}" if tail else "")

    def _cleanup(self) -> None:
        self._stderr.close()
        shutil.rmtree(self._work, ignore_errors=True)


def _enlarge_pipe(stream: IO[bytes]) -> None:
    try:
        import fcntl

        fcntl.fcntl(stream.fileno(), _F_SETPIPE_SZ, _PIPE_BYTES)
    except (ImportError, OSError):
        pass  # not Linux, or over the system's limit: the default pipe only waits more often


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def child_main(stdin: IO[bytes], stdout: IO[bytes]) -> int:
    """The child's loop (see the module docstring); returns the exit status."""
    from server.archive.metrics_io import XlsxMetricsWriter

    writer = None
    try:
        target, columns, tmpdir = pickle.load(stdin)
        writer = XlsxMetricsWriter(target, columns, tmpdir=tmpdir)
        while True:
            try:
                frame = pickle.load(stdin)
            except EOFError:
                writer.discard()  # the parent gave up: no workbook
                return 0
            if frame[0] == "rows":
                writer.write_rows(frame[1])
            elif frame[0] == "close":
                writer.close()
                answer: tuple = ("ok", None)
                break
            else:
                raise ValueError(f"unknown frame {frame[0]!r}")
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        if writer is not None:
            writer.discard()
        answer = ("error", f"{type(exc).__name__}: {exc}")
        traceback.print_exc()
    pickle.dump(answer, stdout)
    stdout.flush()
    return 0 if answer[0] == "ok" else 1


if __name__ == "__main__":
    sys.exit(child_main(sys.stdin.buffer, sys.stdout.buffer))
