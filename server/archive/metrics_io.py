"""Streaming writers of metrics rows: CSV (csv module), XLSX (XlsxWriter), JSON.

Each writer takes the column descriptions (``metrics.column_docs``: name, unit, definition,
source), then rows: ``write(row)`` one dict keyed by column name, or ``write_rows(rows)`` lists
of values in column order (the fast path of the archive writer); ``None`` = no value. No
writer holds more than the rows of one call. ``close()`` finishes the file; it does not close
a stream it was given.
"""
from __future__ import annotations

import csv
import json
import math
import shutil
import tempfile
from typing import IO, Any, Optional, Sequence

import xlsxwriter

_JSON = json.JSONEncoder(ensure_ascii=False)  # json.dumps(..., ensure_ascii=False) builds one per call
METRICS_SCHEMA = "cellhub.metrics"
METRICS_SCHEMA_VERSION = 1


class CsvMetricsWriter:
    """RFC 4180 CSV (``csv`` module, ``excel`` dialect) with one header row of column names.

    ``stream`` is a text stream opened with ``newline=""``. Floats are written with full
    precision (``repr``); ``None`` is written as an empty field."""

    def __init__(self, stream: IO[str], columns: list[dict]) -> None:
        self.names = [c["name"] for c in columns]
        self._writer = csv.writer(stream)
        self._writer.writerow(self.names)

    def write(self, row: dict[str, Any]) -> None:
        self._writer.writerow(["" if row.get(n) is None else row[n] for n in self.names])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as value lists in column order (the csv module writes ``None`` as empty)."""
        self._writer.writerows(rows)

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
    """An .xlsx workbook made by XlsxWriter (``constant_memory`` mode: rows go to a temporary
    file as they come): sheet ``metrics`` (bold header row, frozen, then one row per object,
    numbers as numbers) and sheet ``columns`` (name, unit, definition, source of each column).

    ``target`` is a file name, written on ``close``. A string is always text, never a formula,
    a link or a number (``strings_to_formulas`` / ``_urls`` / ``_numbers`` off: a category
    named ``=SUM(...)`` stays that text); ``None``, an empty string or a non-finite number is
    an empty cell. ``discard()`` drops an unfinished workbook without assembling it. Usable
    as a context manager (closes on a normal exit, discards on an exception). The archive
    writer runs it in a child process (``metrics_process.MetricsFilesProcess``)."""

    def __init__(self, target: str, columns: list[dict], tmpdir: Optional[str] = None) -> None:
        self.target = str(target)
        self.columns = columns
        self.names = [c["name"] for c in columns]
        self._tmp = tempfile.mkdtemp(prefix="xlsx-", dir=tmpdir)
        self._workbook = xlsxwriter.Workbook(self.target, {
            "constant_memory": True, "tmpdir": self._tmp, "strings_to_formulas": False,
            "strings_to_urls": False, "strings_to_numbers": False})
        bold = self._workbook.add_format({"bold": True})
        self._sheet = self._workbook.add_worksheet("metrics")
        self._sheet.freeze_panes(1, 0)
        self._sheet.set_column(0, len(self.names) - 1, 14)
        self._sheet.write_row(0, 0, self.names, bold)
        self._bold = bold
        self._row = 0
        self._done = False

    def write(self, row: dict[str, Any]) -> None:
        self.write_rows([[row.get(n) for n in self.names]])

    def write_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """Rows as value lists in column order: ``int``/``float`` as numbers, ``str`` as text."""
        sheet = self._sheet
        for values in rows:
            self._row += 1
            for col, value in enumerate(values):
                if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
                    continue
                if isinstance(value, str):
                    sheet.write_string(self._row, col, value)
                else:
                    sheet.write_number(self._row, col, value)

    def _columns_sheet(self) -> None:
        docs = self._workbook.add_worksheet("columns")
        docs.set_column(0, 1, 22)
        docs.set_column(2, 3, 80)
        docs.write_row(0, 0, ["name", "unit", "definition", "source"], self._bold)
        for r, c in enumerate(self.columns, start=1):
            docs.write_row(r, 0, [c["name"], c["unit"], c["definition"], c["source"]])

    def close(self) -> None:
        """Assemble the workbook into ``target`` (one XlsxWriter call that cannot be
        interrupted; ``metrics_process.MetricsFilesProcess`` runs it where a cancel need not wait)."""
        if self._done:
            return
        self._done = True
        self._columns_sheet()
        try:
            self._workbook.close()
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def discard(self) -> None:
        """Drop the workbook unwritten (``target`` is not touched) and its temporary files."""
        self._done = True
        for sheet in self._workbook.worksheets():
            handle = getattr(sheet, "row_data_fh", None)
            if handle is not None:
                handle.close()
        shutil.rmtree(self._tmp, ignore_errors=True)


class JsonMetricsWriter:
    """One JSON object: ``{"schema": "cellhub.metrics", "schema_version": 1, **meta,
    "columns": [{name, unit, definition, source}], "rows": [{column: value}, ...]}``.

    ``stream`` is a text stream; ``meta`` holds e.g. ``pixel_size_um`` and ``length_unit``."""

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
        encode, names = _JSON.encode, self.names
        text = ",\n".join(encode(dict(zip(names, row))) for row in rows)
        self.stream.write(("\n" if self._first else ",\n") + text)
        self._first = False

    def close(self) -> None:
        self.stream.write("\n]}\n")
