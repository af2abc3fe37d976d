"""The benchmark machinery runs end to end on tiny inputs and writes its table.

No timing is asserted (tests never assert speed): only that ``python -m bench`` with the
tiny profile runs P3 (reactive store vs reaktiv) and P4 (export vs plain zip, 5 images),
which need no browser, and rewrites the generated part of a README and results.json.
"""
from __future__ import annotations

import json

from bench import report
from bench.__main__ import main
from bench.p1_load import check_bare_page


def test_bench_runs_p3_and_p4_and_rewrites_the_results_table(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text(f"# Benchmarks\n\nProse stays.\n\n{report.BEGIN}\nold table\n{report.END}\n\nTail stays.\n")

    assert main(["--tiny", "--only", "P3,P4", "--out", str(tmp_path)]) == 0

    text = readme.read_text()
    assert "Prose stays." in text and "Tail stays." in text and "old table" not in text
    assert text.count(report.BEGIN) == 1 and text.count(report.END) == 1
    lines = [line for line in text.splitlines() if line.startswith("| P")]
    assert {line.split("|")[1].strip() for line in lines} == {"P3", "P4"}
    store_rows = [line for line in lines if line.startswith("| P3 | CPython, n=")]
    assert len(store_rows) == 6
    assert all(("**pass**" in line) or ("**FAIL**" in line) or ("| info |" in line) for line in lines)
    assert "machine:" in text and "reaktiv 0.24.2" in text

    stored = json.loads((tmp_path / "results.json").read_text())
    assert set(stored) == {"P3", "P4"}
    p4 = stored["P4"]
    assert p4["profile"] == "tiny" and "5 images" in p4["inputs"]["project"]
    assert all(row["value"]["n"] >= 1 and row["value"]["median"] >= 0 for row in p4["rows"])
    assert any(row["baseline_name"] == "zip of the same member bytes" and row["ratio"] > 0 for row in p4["rows"])


def test_a_partial_run_keeps_the_other_benchmarks_results(tmp_path):
    assert main(["--tiny", "--only", "P3", "--out", str(tmp_path)]) == 0
    first = json.loads((tmp_path / "results.json").read_text())["P3"]["started_at"]
    assert main(["--tiny", "--only", "P4", "--out", str(tmp_path)]) == 0
    stored = json.loads((tmp_path / "results.json").read_text())
    assert set(stored) == {"P3", "P4"} and stored["P3"]["started_at"] == first
    assert "| P3 |" in (tmp_path / "README.md").read_text()


def test_the_bare_page_boots_the_export_pages_runtime():
    check_bare_page()  # raises AssertionError if PyScript or Pyodide differ
