"""``XlsxProcessWriter``: the workbook ``XlsxMetricsWriter`` writes, made in a child process;
a cancel or a failure kills that process and leaves no file behind."""
import os
import signal
import zipfile

import pytest

from server.archive.metrics import column_docs
from server.archive.metrics_io import XlsxMetricsWriter
from server.archive.xlsx_process import XlsxProcessError, XlsxProcessWriter

COLUMNS = column_docs(0.5)
NAMES = [c["name"] for c in COLUMNS]


def _rows(n=60):
    rows = [[i, f"img_{i % 3}.png", i * 7, "nucleus"] + [(i + 1) * 10.0 ** (k - 8) / 3 for k in range(17)]
            for i in range(n)]
    rows[1][1] = "a&b<c>d\"e'f{0}.png"
    rows[2][5] = None
    rows[3][6] = float("nan")
    return rows


def test_the_workbook_is_the_one_xlsxmetricswriter_writes_in_process(tmp_path):
    rows = _rows()
    with XlsxProcessWriter(str(tmp_path / "child.xlsx"), COLUMNS, tmpdir=str(tmp_path)) as writer:
        writer.write_rows(rows[:7])
        writer.write(dict(zip(NAMES, rows[7])))
        writer.write_rows([])
        writer.write_rows(rows[8:])
        pid = writer._proc.pid
    assert pid != os.getpid()
    with XlsxMetricsWriter(str(tmp_path / "here.xlsx"), COLUMNS) as here:
        here.write_rows(rows)
    with zipfile.ZipFile(tmp_path / "child.xlsx") as a, zipfile.ZipFile(tmp_path / "here.xlsx") as b:
        assert a.namelist() == b.namelist()
        for name in b.namelist():
            if name != "docProps/core.xml":  # creation time
                assert a.read(name) == b.read(name), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child.xlsx", "here.xlsx"]  # no temporaries left


def test_discard_kills_the_process_and_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with pytest.raises(KeyError):
        with XlsxProcessWriter(str(tmp_path / "m.xlsx"), COLUMNS, tmpdir=str(tmp)) as writer:
            writer.write_rows(_rows(2000))
            raise KeyError("stop")
    assert writer._proc.returncode is not None
    assert not (tmp_path / "m.xlsx").exists()
    assert list(tmp.iterdir()) == []
    with pytest.raises(ValueError):
        writer.write_rows(_rows(5))  # a discarded workbook takes no more rows


def test_a_check_that_raises_stops_the_wait_kills_the_process_and_nothing_is_left(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    writer = XlsxProcessWriter(str(tmp_path / "m.xlsx"), COLUMNS, tmpdir=str(tmp))
    writer.write_rows(_rows(8000))
    calls = []

    def check():
        calls.append(1)
        raise KeyError("cancelled")

    with pytest.raises(KeyError):
        writer.close(check)
    assert calls == [1]
    assert writer._proc.returncode == -signal.SIGKILL
    assert not (tmp_path / "m.xlsx").exists()
    assert list(tmp.iterdir()) == []


def test_a_failure_in_the_process_is_a_clear_error_and_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    writer = XlsxProcessWriter(str(tmp_path / "no such folder" / "m.xlsx"), COLUMNS, tmpdir=str(tmp))
    writer.write_rows(_rows())
    with pytest.raises(XlsxProcessError, match="metrics.xlsx could not be written: .*no such folder"):
        writer.close()
    assert list(tmp.iterdir()) == []


def test_a_process_that_dies_is_a_clear_error_and_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    writer = XlsxProcessWriter(str(tmp_path / "m.xlsx"), COLUMNS, tmpdir=str(tmp))
    writer.write_rows(_rows())
    writer._proc.kill()
    writer._proc.wait()
    with pytest.raises(XlsxProcessError, match=f"exited with status {-signal.SIGKILL}"):
        for _ in range(200):  # the pipe takes rows until it is full or a write meets the closed end
            writer.write_rows(_rows(500))
        writer.close()
    assert not (tmp_path / "m.xlsx").exists()
    assert list(tmp.iterdir()) == []


def test_end_of_input_without_close_drops_the_workbook(tmp_path):
    # What the child sees when its parent dies: no workbook, status 0, its files removed.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    writer = XlsxProcessWriter(str(tmp_path / "m.xlsx"), COLUMNS, tmpdir=str(tmp))
    writer.write_rows(_rows())
    writer._proc.stdin.close()
    assert writer._proc.wait(30) == 0
    assert not (tmp_path / "m.xlsx").exists()
    assert [p.name for p in tmp.iterdir() for p in p.iterdir()] == ["stderr.txt"]  # the parent's own file
    writer._done = True
    writer._cleanup()
