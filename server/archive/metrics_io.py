"""Streaming writers of metrics rows: CSV (csv module), XLSX (rustpy-xlsxwriter), JSON.

Each writer takes the column descriptions (``metrics.column_docs``: name, unit, definition,
source), then rows: ``write(row)`` one dict keyed by column name, or ``write_rows(rows)`` lists
of values in column order (the fast path of the archive writer); ``None`` = no value. The
CSV and JSON writers hold no rows; the XLSX writer keeps the rows of up to ``_QUEUED`` calls
until its thread has written them (do not change a row list after handing it over). ``close()`` finishes the file; it does not close
a stream it was given.
"""
from __future__ import annotations

import csv
import errno
import json
import os
import re
from typing import IO, Any, Callable, Iterator, Sequence

import orjson
import rustpy_xlsxwriter

from server.archive.thread_feed import ThreadFeed

METRICS_SCHEMA = "cellhub.metrics"
_QUEUED = 4  # write_rows calls whose rows may wait for the XLSX thread
_END, _ABORT = object(), object()
METRICS_SCHEMA_VERSION = 1


FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet may read as the start of a formula (OWASP, "CSV Injection")."""


def csv_text(value: Any) -> Any:
    """``value`` as a CSV cell that no spreadsheet runs as a formula: a string starting with
    one of ``FORMULA_START`` gets a single quote before it (OWASP's rule; spreadsheets show
    the rest as text); numbers, negative ones too, and other strings are left alone."""
    if type(value) is str and value.startswith(FORMULA_START):
        return "'" + value
    return value


class CsvMetricsWriter:
    """RFC 4180 CSV (``csv`` module, ``excel`` dialect) with one header row of column names.

    ``stream`` is a text stream opened with ``newline=""``. Floats are written with full
    precision (``repr``); ``None`` is written as an empty field. Text cells go through
    :func:`csv_text` (formula injection); quoting per RFC 4180 keeps a separator or quote in
    a text from starting a cell of its own."""

    def __init__(self, stream: IO[str], columns: list[dict]) -> None:
        self.names = [c["name"] for c in columns]
        self._writer = csv.writer(stream)
        self._writer.writerow(self.names)

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow(["" if row.get(n) is None else csv_text(row[n]) for n in self.names])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as value lists in column order (the csv module writes ``None`` as empty)."""
        self._writer.writerows([csv_text(v) for v in row] for row in rows)

    def close(self) -> None:
        """Nothing to finish (the caller owns the stream)."""


class ClosedOrDiscarded:
    """Context manager of a file writer: ``close()`` on a normal exit, ``discard()`` (nothing
    left behind) on an exception."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *exc: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.discard()


class XlsxMetricsWriter(ClosedOrDiscarded):
    """An .xlsx workbook written by rustpy-xlsxwriter (Python bindings of rust_xlsxwriter, in
    its constant-memory mode: rows go to a temporary file as they come): sheet ``metrics``
    (bold header row, frozen, then one row per object, numbers as numbers) and sheet
    ``columns`` (name, unit, definition, source of each column, bold header).

    ``target`` is a file name, written on ``close``. A string is always a text cell, never a
    formula, a link or a number (a category named ``=SUM(...)`` stays that text); ``None``, an
    empty string or a non-finite number is an empty cell; a number keeps every bit (shortest
    round-trip form, 17 significant digits where needed). Every XLSX number is a double, and
    the library writes integers (ids) as ``1.0``: Excel and LibreOffice show ``1``, openpyxl
    reads a float. The library pulls rows from a
    generator while it saves, so it runs in a thread of its own that ``write_rows`` feeds
    through a small bounded queue: no more than ``_QUEUED`` calls' rows wait in memory.

    Raises, from ``write_rows`` (once the thread has failed) or ``close``: ``OSError`` (with
    the errno when the library names one: a full disk reads as one) for a file that cannot be
    written; ``ValueError`` for a value Excel cannot hold (a string over 32,767 characters).
    ``discard()`` drops an unfinished workbook (``target`` is not left behind). Usable as a
    context manager (closes on a normal exit, discards on an exception). The archive writer
    runs it in a child process (``metrics_process.MetricsFilesProcess``)."""

    def __init__(self, target: str, columns: list[dict]) -> None:
        self.target = str(target)
        self.columns = columns
        self.names = [c["name"] for c in columns]
        self._done = False
        self._feed = ThreadFeed(self._save, "metrics-xlsx", _QUEUED, "metrics.xlsx: the workbook is closed or discarded")

    def write(self, row: dict[str, Any]) -> None:
        self.write_rows([[row.get(n) for n in self.names]])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as value lists in column order: ``int``/``float`` as numbers, ``str`` as text."""
        if rows:
            self._feed.put(list(rows))

    def busy(self) -> bool:
        """Whether the library's thread is still running (false once closed or discarded)."""
        return self._feed.alive()

    def close(self) -> None:
        """Finish the workbook into ``target`` and wait for it."""
        if self._done:
            return
        self._done = True
        try:
            self._feed.finish(_END)
            if not os.path.isfile(self.target):
                raise OSError(errno.EIO, "metrics.xlsx could not be written: the library ended without it")
        except BaseException:
            self._feed.abort(_ABORT)
            _remove_file(self.target)
            raise

    def discard(self) -> None:
        """Drop the workbook unwritten (``target`` is not left behind) and its temporary files."""
        if self._done and not self._feed.alive():
            return
        self._done = True
        self._feed.abort(_ABORT)
        _remove_file(self.target)

    def _rows(self, take: Callable[[], Any]) -> Iterator[dict[str, Any]]:
        # The library writes the header from the first row's keys and a row without values not
        # at all: with no rows, one empty row gives a header-only sheet.
        names, empty = self.names, True
        while True:
            batch = take()
            if batch is _END:
                if empty:
                    yield dict.fromkeys(names)
                return
            if batch is _ABORT:
                raise _Discarded
            empty = False
            for values in batch:
                yield dict(zip(names, values))

    def _save(self, take: Callable[[], Any]) -> None:
        docs = [{"name": c["name"], "unit": c["unit"], "definition": c["definition"], "source": c["source"]}
                for c in self.columns]
        try:
            (rustpy_xlsxwriter.FastExcel(self.target)
             .format(bold_headers=True)
             .freeze(row=1, sheet="metrics")
             .sheet("metrics", self._rows(take), column_width=14)
             .sheet("columns", docs, column_widths=[22, 22, 80, 80])
             .save())
        except _Discarded:
            pass
        except BaseException as exc:  # noqa: BLE001 - the feed hands it to the caller's thread
            # A failed write of the library's temporary file panics in Rust: PyO3 raises
            # PanicException, a BaseException, with the OS error only in its text.
            found = re.search(r"os error (\d+)|Os \{ code: (\d+)", str(exc))
            code = getattr(exc, "errno", None) or (int(found.group(1) or found.group(2)) if found else None)
            text = f"metrics.xlsx could not be written: {exc}"
            raise (OSError(code, text) if code else ValueError(text)) from exc


class _Discarded(Exception):
    """Raised into the library's row generator to stop an unfinished workbook."""


def _remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


class JsonMetricsWriter:
    """One JSON object: ``{"schema": "cellhub.metrics", "schema_version": 1, **meta,
    "columns": [{name, unit, definition, source}], "rows": [{column: value}, ...]}``.

    ``stream`` is a text stream; ``meta`` holds e.g. ``pixel_size_um`` and ``length_unit``.
    Rows are encoded by orjson (RFC 8259: a value that is not a finite number is ``null``, as
    it is an empty cell in XLSX; CSV writes ``nan``/``inf``; numbers in their shortest
    round-trip form)."""

    def __init__(self, stream: IO[str], columns: list[dict], meta: dict[str, Any]) -> None:
        self.stream = stream
        self.names = [c["name"] for c in columns]
        head = {"schema": METRICS_SCHEMA, "schema_version": METRICS_SCHEMA_VERSION, **meta, "columns": columns}
        stream.write(json.dumps(head, ensure_ascii=False)[:-1] + ',\n"rows": [')
        self._first = True

    def write(self, row: dict[str, Any]) -> None:
        self.write_rows([[row.get(n) for n in self.names]])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as value lists in column order."""
        if not rows:
            return
        names = self.names
        text = b",\n".join(orjson.dumps(dict(zip(names, row))) for row in rows).decode("utf-8")
        self.stream.write(("\n" if self._first else ",\n") + text)
        self._first = False

    def close(self) -> None:
        self.stream.write("\n]}\n")
