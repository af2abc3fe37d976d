"""``XlsxMetricsWriter``: XlsxWriter's workbook, strings always text, empty and non-finite values as
empty cells. (The archive runs it in a child process: ``test_archive_metrics_process.py``.)"""
import math
import zipfile

import openpyxl
import pytest
import xlsxwriter

from server.archive.metrics import column_docs
from server.archive.metrics_io import XlsxMetricsWriter

COLUMNS = column_docs(0.5)
NAMES = [c["name"] for c in COLUMNS]


def _rows():
    rows = []
    for i in range(40):
        rows.append([i, f"img_{i % 3}.png", i * 7, "nucleus"] + [(i + 1) * 10.0 ** (k - 8) / 3 for k in range(17)])
    rows[1][1] = "a&b<c>d\"e'f{0}.png"  # XML escapes, and braces (str.format must not see them)
    rows[2][3] = " padded "  # xml:space="preserve"
    rows[3][3] = "ctrl\x01_x0041_"  # control character and a literal escape sequence
    rows[4][7] = math.inf  # no cell
    rows[5][5] = None  # no cell
    rows[6][3] = ""  # no cell
    rows[7] = [None] * len(NAMES)  # no row at all
    rows[8][2] = 2**62  # a big integer
    rows[9][10] = -0.0
    rows[10][3] = "=SUM(A1:A2)"  # text, not a formula
    return rows


def _reference(path, rows):
    """The same workbook written cell by cell through XlsxWriter itself."""
    workbook = xlsxwriter.Workbook(str(path), {"constant_memory": True, "strings_to_formulas": False,
                                               "strings_to_urls": False, "strings_to_numbers": False})
    bold = workbook.add_format({"bold": True})
    sheet = workbook.add_worksheet("metrics")
    sheet.freeze_panes(1, 0)
    sheet.set_column(0, len(NAMES) - 1, 14)
    sheet.write_row(0, 0, NAMES, bold)
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
                continue
            sheet.write(r, c, value)
    docs = workbook.add_worksheet("columns")
    docs.set_column(0, 1, 22)
    docs.set_column(2, 3, 80)
    docs.write_row(0, 0, ["name", "unit", "definition", "source"], bold)
    for r, c in enumerate(COLUMNS, start=1):
        docs.write_row(r, 0, [c["name"], c["unit"], c["definition"], c["source"]])
    workbook.close()


def test_every_part_is_what_xlsxwriter_writes(tmp_path):
    rows = _rows()
    with XlsxMetricsWriter(str(tmp_path / "ours.xlsx"), COLUMNS, tmpdir=str(tmp_path)) as writer:
        writer.write_rows(rows[:5])
        writer.write(dict(zip(NAMES, rows[5])))
        writer.write_rows(rows[6:])
    _reference(tmp_path / "ref.xlsx", rows)
    with zipfile.ZipFile(tmp_path / "ours.xlsx") as ours, zipfile.ZipFile(tmp_path / "ref.xlsx") as ref:
        assert ours.namelist() == ref.namelist()
        for name in ref.namelist():
            if name != "docProps/core.xml":  # creation time
                assert ours.read(name) == ref.read(name), name
    sheet = list(openpyxl.load_workbook(tmp_path / "ours.xlsx", read_only=True)["metrics"].iter_rows(values_only=True))
    assert sheet[0] == tuple(NAMES)
    assert sheet[2][1] == "a&b<c>d\"e'f{0}.png" and sheet[11][3] == "=SUM(A1:A2)"
    assert sheet[9][2] == 2**62


def test_no_rows_is_a_header_only_sheet(tmp_path):
    with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
        writer.write_rows([])
    sheet = list(openpyxl.load_workbook(tmp_path / "m.xlsx", read_only=True)["metrics"].iter_rows(values_only=True))
    assert sheet == [tuple(NAMES)]


def test_discard_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with pytest.raises(KeyError):
        with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS, tmpdir=str(tmp)) as writer:
            writer.write_rows(_rows())
            raise KeyError("stop")
    assert not (tmp_path / "m.xlsx").exists()
    assert list(tmp.iterdir()) == []
