"""``XlsxMetricsWriter``: rustpy-xlsxwriter's workbook (rust_xlsxwriter), read back with openpyxl:
strings always text, numbers as numbers with every bit, empty and non-finite values as empty
cells, a bold frozen header on ``metrics`` and the column documentation on ``columns``. (The
archive runs it in a child process: ``test_archive_metrics_process.py``.)"""
import errno
import math
import os
import re
import zipfile

import openpyxl
import pytest

from server.archive.metrics import column_docs
from server.archive.metrics_io import XlsxMetricsWriter

COLUMNS = column_docs(0.5)
NAMES = [c["name"] for c in COLUMNS]


def _rows():
    rows = []
    for i in range(40):
        rows.append([i, f"img_{i % 3}.png", i * 7, f"mask_{i}.png", "nucleus"]
                    + [(i + 1) * 10.0 ** (k - 8) / 3 for k in range(17)])
    rows[1][1] = "a&b<c>d\"e'f{0}.png"  # XML escapes, and braces
    rows[2][3] = " padded "  # xml:space="preserve"
    rows[3][3] = "ctrl\x01_x0041_"  # a control character and a literal escape sequence
    rows[4][7] = math.inf  # no cell
    rows[5][5] = None  # no cell
    rows[6][3] = ""  # no cell
    rows[7] = [None] * len(NAMES)  # an empty row
    rows[8][2] = 2**62  # a big integer (exact as a double)
    rows[9][10] = -0.0
    rows[10][3] = "=SUM(A1:A2)"  # text, not a formula
    rows[11][12] = 0.1 + 0.2  # 17 significant digits: 0.30000000000000004
    rows[12][13] = math.nan  # no cell
    rows[13][1] = "Zellkern µm² 細胞"
    return rows


def _expected(value):
    if value is None or value == "" or (isinstance(value, float) and not math.isfinite(value)):
        return None
    return value


def _text(value):
    """A cell's text as Excel shows it: OOXML escapes characters XML cannot hold as ``_xHHHH_``
    (and a literal ``_x`` as ``_x005F_x``), which openpyxl leaves as they are."""
    return re.sub(r"_x([0-9A-Fa-f]{4})_", lambda m: chr(int(m.group(1), 16)), value) if isinstance(value, str) else value


def _sheet(path, name):
    workbook = openpyxl.load_workbook(path)
    return workbook[name]


def test_every_cell_holds_the_rows_value_and_strings_stay_text(tmp_path):
    rows = _rows()
    with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
        writer.write_rows(rows[:5])
        writer.write(dict(zip(NAMES, rows[5])))
        writer.write_rows(rows[6:])
    sheet = _sheet(tmp_path / "m.xlsx", "metrics")
    values = [list(r) for r in sheet.iter_rows(min_row=1, max_row=len(rows) + 1, max_col=len(NAMES), values_only=True)]
    assert values[0] == NAMES
    for r, row in enumerate(rows, start=1):
        for c, value in enumerate(row):
            got, want = _text(values[r][c]), _expected(value)
            assert got == want, (r, c, got, want)
            if isinstance(want, str):
                assert isinstance(got, str) and sheet.cell(r + 1, c + 1).data_type == "s", (r, c)
            elif want is not None:
                # Every XLSX number is a double; the library writes integers as "1.0", which
                # openpyxl reads back as a float (Excel and LibreOffice show 1).
                assert type(got) is float, (r, c, got)
    assert math.copysign(1, values[10][10]) == -1  # -0.0 keeps its sign
    assert values[12][12] == 0.30000000000000004  # full precision (repr), not 16 digits
    assert not any(cell.data_type == "f" for row in sheet.iter_rows() for cell in row)  # no formula anywhere


def test_the_header_is_bold_and_frozen_and_the_columns_are_documented(tmp_path):
    with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
        writer.write_rows(_rows()[:3])
    workbook = openpyxl.load_workbook(tmp_path / "m.xlsx")
    assert workbook.sheetnames == ["metrics", "columns"]
    metrics, docs = workbook["metrics"], workbook["columns"]
    assert metrics.freeze_panes == "A2" and docs.freeze_panes is None
    assert all(cell.font.b for cell in metrics[1]) and not metrics["A2"].font.b
    assert [c.value for c in docs[1]] == ["name", "unit", "definition", "source"] and all(c.font.b for c in docs[1])
    got = [[cell.value for cell in row] for row in docs.iter_rows(min_row=2)]
    assert got == [[_expected(c[k]) for k in ("name", "unit", "definition", "source")] for c in COLUMNS]
    assert metrics.column_dimensions["A"].width == pytest.approx(14, abs=1)
    assert docs.column_dimensions["C"].width == pytest.approx(80, abs=1)


def test_no_rows_is_a_header_only_sheet(tmp_path):
    with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
        writer.write_rows([])
    sheet = list(openpyxl.load_workbook(tmp_path / "m.xlsx", read_only=True)["metrics"].iter_rows(values_only=True))
    assert sheet == [tuple(NAMES)]


def test_many_rows_arrive_in_order(tmp_path):
    rows = [[i, "a.png", i, "cell"] + [i / 7] * 17 for i in range(20_000)]
    with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
        for start in range(0, len(rows), 333):
            writer.write_rows(rows[start:start + 333])
    got = list(openpyxl.load_workbook(tmp_path / "m.xlsx", read_only=True)["metrics"].iter_rows(min_row=2, values_only=True))
    assert [r[0] for r in got] == list(range(20_000)) and got[-1][5] == 19_999 / 7


def test_discard_leaves_nothing(tmp_path):
    with pytest.raises(KeyError):
        with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
            writer.write_rows(_rows())
            raise KeyError("stop")
    assert not (tmp_path / "m.xlsx").exists()
    assert not writer.busy()


def test_a_string_excel_cannot_hold_is_a_clear_error_and_no_file(tmp_path):
    rows = _rows()[:3]
    rows[2][3] = "x" * 32_768  # Excel's limit is 32,767 characters a cell
    with pytest.raises(ValueError, match="metrics.xlsx could not be written: .*32,767"):
        with XlsxMetricsWriter(str(tmp_path / "metrics.xlsx"), COLUMNS) as writer:
            writer.write_rows(rows)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_raises_an_os_error_with_its_errno(tmp_path):
    if not os.path.exists("/dev/full"):
        pytest.skip("needs /dev/full (Linux)")
    (tmp_path / "m.xlsx").symlink_to("/dev/full")  # every write: ENOSPC (the link is removed, never the device)
    with pytest.raises(OSError) as raised:
        with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
            writer.write_rows(_rows())
    assert raised.value.errno == errno.ENOSPC and "metrics.xlsx" in str(raised.value)
    assert list(tmp_path.iterdir()) == [] and os.path.exists("/dev/full")


def test_the_workbook_is_a_valid_zip(tmp_path):
    with XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS) as writer:
        writer.write_rows(_rows())
    with zipfile.ZipFile(tmp_path / "m.xlsx") as zf:
        assert zf.testzip() is None
        assert "xl/worksheets/sheet1.xml" in zf.namelist()


_TEMP_FILE_FAILS = r"""
import os, resource, signal, sys
from server.archive.metrics import column_docs
from server.archive.metrics_io import XlsxMetricsWriter
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
columns = column_docs(0.5)
rows = [[i, "a.png", i, "cell"] + [i / 7] * (len(columns) - 4) for i in range(20_000)]
writer = XlsxMetricsWriter(sys.argv[1], columns)
try:
    for start in range(0, len(rows), 500):
        writer.write_rows(rows[start:start + 500])
    writer.close()
except OSError as exc:
    print("OSError", exc.errno, "metrics.xlsx" in str(exc), os.path.exists(sys.argv[1]), writer.busy())
except BaseException as exc:
    print("other", type(exc).__name__, exc)
else:
    print("no error", os.path.exists(sys.argv[1]))
"""


def test_a_temporary_file_that_cannot_be_written_is_an_os_error_and_no_file(tmp_path):
    # The library's rows go to a temporary file as they come (in the job's folder when the
    # metrics process runs it); a failed write there (here: over a file size limit, EFBIG)
    # panics in Rust, which must still reach the caller as the OSError it is.
    import subprocess
    import sys

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = subprocess.run([sys.executable, "-c", _TEMP_FILE_FAILS, str(tmp_path / "m.xlsx")], cwd=root,
                         capture_output=True, text=True, timeout=120, env={**os.environ, "PYTHONPATH": root})
    assert out.stdout.strip() == f"OSError {errno.EFBIG} True False False", out.stdout + out.stderr[-2000:]


def test_an_error_in_the_library_is_not_hidden_by_a_closing_race(tmp_path, monkeypatch):
    # The thread stores its error and ends; a put() that finds it gone must report that
    # error, not a generic "closed".
    writer = XlsxMetricsWriter(str(tmp_path / "m.xlsx"), COLUMNS)
    rows = _rows()
    rows[0][3] = "x" * 40_000
    writer.write_rows(rows)
    writer._feed._thread.join(30)
    assert not writer.busy()
    real_error = writer._feed.error
    writer._feed.error = None  # as if the put() looked just before the thread stored it ...
    real_is_alive = writer._feed._thread.is_alive

    def is_alive():
        writer._feed.error = real_error  # ... and the thread stored it and ended right after
        return real_is_alive()

    monkeypatch.setattr(writer._feed._thread, "is_alive", is_alive)
    with pytest.raises(ValueError, match="32,767"):
        writer.close()
    assert list(tmp_path.iterdir()) == []
