"""Streaming writers of metrics rows: CSV (csv module), XLSX (XlsxWriter, constant_memory), JSON.

Each writer takes the column descriptions (``metrics.column_docs``: name, unit, definition,
source), then rows one at a time (dicts keyed by column name; ``None`` = no value), and never
holds more than one row. ``close()`` finishes the file; it does not close a stream it was given.
"""
from __future__ import annotations

import csv
import json
from typing import IO, Any, Optional, Union

import xlsxwriter

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

    def close(self) -> None:
        """Nothing to finish (the caller owns the stream)."""


class XlsxMetricsWriter:
    """An .xlsx workbook with sheet ``metrics`` (header row, then one row per object, numbers as
    numbers) and sheet ``columns`` (name, unit, definition, source of each column).

    ``target`` is a file name or a binary file object (XlsxWriter zips into it on ``close``).
    ``constant_memory`` mode: each row goes to XlsxWriter's temporary file as it is written
    (``tmpdir`` chooses where). Usable as a context manager (closes on exit)."""

    def __init__(self, target: Union[str, IO[bytes]], columns: list[dict], tmpdir: Optional[str] = None) -> None:
        self.columns = columns
        self.names = [c["name"] for c in columns]
        options: dict[str, Any] = {"constant_memory": True}
        if tmpdir:
            options["tmpdir"] = tmpdir
        self.workbook = xlsxwriter.Workbook(target, options)
        self._bold = self.workbook.add_format({"bold": True})
        self.sheet = self.workbook.add_worksheet("metrics")
        self.sheet.freeze_panes(1, 0)
        self.sheet.set_column(0, len(self.names) - 1, 14)
        self.sheet.write_row(0, 0, self.names, self._bold)
        self._row = 1

    def write(self, row: dict[str, Any]) -> None:
        for col, name in enumerate(self.names):
            value = row.get(name)
            if value is not None:
                self.sheet.write(self._row, col, value)
        self._row += 1

    def close(self) -> None:
        docs = self.workbook.add_worksheet("columns")
        docs.set_column(0, 1, 22)
        docs.set_column(2, 3, 80)
        docs.write_row(0, 0, ["name", "unit", "definition", "source"], self._bold)
        for r, c in enumerate(self.columns, start=1):
            docs.write_row(r, 0, [c["name"], c["unit"], c["definition"], c["source"]])
        self.workbook.close()

    def __enter__(self) -> "XlsxMetricsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


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
        text = json.dumps({n: row.get(n) for n in self.names}, ensure_ascii=False)
        self.stream.write(("\n" if self._first else ",\n") + text)
        self._first = False

    def close(self) -> None:
        self.stream.write("\n]}\n")
