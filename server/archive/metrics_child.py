"""The metrics child process: ``python -m server.archive.metrics_child SPOOL``.

Reads the frames of ``metrics_protocol`` (``Start``, ``Rows``..., ``Close``) and writes the
metrics files with ``metrics_io``'s writers (the same files they make in-process), then
answers ``Finished`` or ``Failed``. End of input before ``Close`` leaves no file (exit
status 0); a failure removes whatever was written (exit status 1).
"""
from __future__ import annotations

import sys
import traceback
from typing import IO, Any, Optional

from server.archive.deflate import Deflated, deflate_file
from server.archive.metrics_protocol import (
    Answer, Close, Failed, Finished, Rows, Start, deflated_file, metrics_file, remove_file, receive_frame, write_answer,
)


class _Files:
    """The writers of one ``Start``: open files and the XLSX writer, removable on failure."""

    def __init__(self, start: Start) -> None:
        from server.archive.metrics_io import CsvMetricsWriter, JsonMetricsWriter, XlsxMetricsWriter

        self.start = start
        self.streams: list[IO[str]] = []
        self.writers: list[Any] = []
        self.xlsx: Optional[XlsxMetricsWriter] = None
        for fmt in start.formats:
            path = metrics_file(start.folder, fmt)
            if fmt == "xlsx":
                self.xlsx = XlsxMetricsWriter(str(path), start.columns)
                self.writers.append(self.xlsx)
                continue
            stream = open(path, "w", encoding="utf-8", newline="")
            self.streams.append(stream)
            self.writers.append(CsvMetricsWriter(stream, start.columns) if fmt == "csv"
                                else JsonMetricsWriter(stream, start.columns, start.meta))

    def write_rows(self, rows: list[list[Any]]) -> None:
        for writer in self.writers:
            writer.write_rows(rows)

    def finish(self) -> dict[str, Deflated]:
        """Close every file; with ``deflate``, replace each by its deflated stream."""
        for writer in self.writers:
            writer.close()
        for stream in self.streams:
            stream.close()
        deflated = {}
        for fmt in self.start.formats if self.start.deflate else ():
            path = metrics_file(self.start.folder, fmt)
            deflated[fmt] = deflate_file(str(path), str(deflated_file(path)))
            remove_file(path)
        return deflated

    def drop(self) -> None:
        """Remove every file (plain and deflated) and stop the XLSX writer."""
        if self.xlsx is not None:
            self.xlsx.discard()
        for stream in self.streams:
            stream.close()
        for fmt in self.start.formats:
            remove_file(metrics_file(self.start.folder, fmt))
            remove_file(deflated_file(metrics_file(self.start.folder, fmt)))


def _serve(stdin: IO[bytes], spool: IO[bytes], files: list[_Files]) -> Optional[Answer]:
    """Frames until ``Close`` (the answer) or the end of input (None: the files are dropped)."""
    start = receive_frame(stdin, spool)
    if not isinstance(start, Start):
        raise ValueError(f"the first frame must be Start, not {type(start).__name__}")
    files.append(_Files(start))
    while True:
        try:
            frame = receive_frame(stdin, spool)
        except EOFError:
            files[0].drop()  # the parent gave up: no files
            return None
        if isinstance(frame, Rows):
            files[0].write_rows(frame.rows)
        elif isinstance(frame, Close):
            return Finished(files[0].finish())
        else:
            raise ValueError(f"unexpected frame {type(frame).__name__}")


def child_main(stdin: IO[bytes], stdout: IO[bytes], spool: IO[bytes]) -> int:
    """The child's loop: frames from ``spool``, one per byte on ``stdin``; the answer on
    ``stdout``. Returns the exit status."""
    files: list[_Files] = []
    try:
        answer = _serve(stdin, spool, files)
        if answer is None:
            return 0
    except Exception as exc:  # noqa: BLE001 - reported to the parent
        try:
            if files:
                files[0].drop()
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        answer = Failed(f"{type(exc).__name__}: {exc}", exc.errno if isinstance(exc, OSError) else None)
        traceback.print_exc()
    write_answer(stdout, answer)
    return 0 if isinstance(answer, Finished) else 1


if __name__ == "__main__":
    with open(sys.argv[1], "rb") as _spool:
        sys.exit(child_main(sys.stdin.buffer, sys.stdout.buffer, _spool))
