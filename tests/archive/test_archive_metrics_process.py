"""``MetricsFilesProcess``: the files ``metrics_io``'s writers make in-process, made in a child
process; a cancel or a failure kills that process and leaves no file behind."""
import csv
import os
import signal
import zipfile

import pytest

from server.archive.metrics import column_docs
from server.archive.metrics_io import CsvMetricsWriter, JsonMetricsWriter, XlsxMetricsWriter
from server.archive.metrics_process import MetricsFilesProcess, MetricsProcessError

COLUMNS = column_docs(0.5)
NAMES = [c["name"] for c in COLUMNS]
META = {"pixel_size_um": 0.5, "length_unit": "um"}
ALL = ["csv", "json", "xlsx"]


def _rows(n=60):
    rows = [[i, f"img_{i % 3}.png", i * 7, i if i % 2 else f"mask_{i}.png", "nucleus"]
            + [(i + 1) * 10.0 ** (k - 8) / 3 for k in range(17)]
            for i in range(n)]
    rows[1][1] = "a&b<c>d\"e'f{0}.png,\n"
    rows[2][5] = None
    rows[3][6] = float("nan")
    return rows


def _in_process(folder, rows):
    folder.mkdir()
    with open(folder / "metrics.csv", "w", encoding="utf-8", newline="") as fp:
        writer = CsvMetricsWriter(fp, COLUMNS)
        writer.write_rows(rows)
    with open(folder / "metrics.json", "w", encoding="utf-8") as fp:
        writer = JsonMetricsWriter(fp, COLUMNS, META)
        writer.write_rows(rows)
        writer.close()
    with XlsxMetricsWriter(str(folder / "metrics.xlsx"), COLUMNS) as writer:
        writer.write_rows(rows)


def test_the_files_are_those_the_writers_make_in_process(tmp_path):
    rows = _rows()
    child = tmp_path / "child"
    child.mkdir()
    with MetricsFilesProcess(child, ALL, COLUMNS, META, tmpdir=str(tmp_path)) as files:
        files.write_rows(rows[:7])
        files.write(dict(zip(NAMES, rows[7])))
        files.write_rows([])
        files.write_rows(rows[8:])
        pid = files._proc.pid
    assert pid != os.getpid()
    assert list(files.paths()) == ALL
    _in_process(tmp_path / "here", rows)
    for name in ("metrics.csv", "metrics.json"):
        assert (child / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name
    with zipfile.ZipFile(child / "metrics.xlsx") as a, zipfile.ZipFile(tmp_path / "here" / "metrics.xlsx") as b:
        assert a.namelist() == b.namelist()
        for name in b.namelist():
            if name != "docProps/core.xml":  # creation time
                assert a.read(name) == b.read(name), name
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child", "here"]  # no temporaries left


def test_only_the_formats_asked_for_are_written(tmp_path):
    with MetricsFilesProcess(tmp_path, ["json"], COLUMNS, META) as files:
        files.write_rows(_rows())
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]
    with MetricsFilesProcess(tmp_path, ["xlsx", "csv"], COLUMNS, META) as files:
        assert list(files.paths()) == ["csv", "xlsx"]  # always in this order, as the archive lists them
    with pytest.raises(ValueError, match="unknown metrics formats"):
        MetricsFilesProcess(tmp_path, ["csv", "parquet"], COLUMNS)


def test_discard_kills_the_process_and_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with pytest.raises(KeyError):
        with MetricsFilesProcess(tmp_path, ALL, COLUMNS, META, tmpdir=str(tmp)) as files:
            files.write_rows(_rows(2000))
            raise KeyError("stop")
    assert files._proc.returncode is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert list(tmp.iterdir()) == []
    with pytest.raises(ValueError):
        files.write_rows(_rows(5))  # discarded: no more rows


def test_a_check_that_raises_stops_the_wait_kills_the_process_and_nothing_is_left(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    files = MetricsFilesProcess(tmp_path, ALL, COLUMNS, META, tmpdir=str(tmp))
    files.write_rows(_rows(8000))
    calls = []

    def check():
        calls.append(1)
        raise KeyError("cancelled")

    with pytest.raises(KeyError):
        files.close(check)
    assert calls == [1]
    assert files._proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert list(tmp.iterdir()) == []


def test_a_failure_in_the_process_is_a_clear_error_and_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    files = MetricsFilesProcess(tmp_path / "no such folder", ALL, COLUMNS, META, tmpdir=str(tmp))
    with pytest.raises(FileNotFoundError, match="metrics files could not be written: .*no such folder"):
        files.write_rows(_rows())
        files.close()
    assert list(tmp.iterdir()) == []


def test_a_process_that_dies_is_a_clear_error_and_leaves_nothing(tmp_path):
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    files = MetricsFilesProcess(tmp_path, ALL, COLUMNS, META, tmpdir=str(tmp))
    files.write_rows(_rows())
    files._proc.kill()
    files._proc.wait()
    with pytest.raises(MetricsProcessError, match=f"exited with status {-signal.SIGKILL}"):
        for _ in range(200):  # the pipe takes rows until it is full or a write meets the closed end
            files.write_rows(_rows(500))
        files.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert list(tmp.iterdir()) == []


def test_end_of_input_without_close_leaves_no_file(tmp_path):
    # What the child sees when its parent dies: no files, status 0.
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    files = MetricsFilesProcess(tmp_path, ALL, COLUMNS, META, tmpdir=str(tmp))
    files.write_rows(_rows())
    files._proc.stdin.close()
    assert files._proc.wait(30) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tmp"]
    assert sorted(p.name for d in tmp.iterdir() for p in d.iterdir()) == ["rows.pickles", "stderr.txt"]  # the parent's own files
    files._done = True
    files._cleanup()


def test_after_end_rows_the_process_finishes_the_files_without_waiting_for_close(tmp_path):
    rows = _rows(3000)
    files = MetricsFilesProcess(tmp_path, ALL, COLUMNS, META)
    files.write_rows(rows)
    files.end_rows()
    assert files._proc.wait(60) == 0  # done on its own: close() has not been called
    with pytest.raises(ValueError, match="closed or discarded"):
        files.write_rows(rows)
    files.close()
    with open(tmp_path / "metrics.csv", encoding="utf-8", newline="") as fp:
        assert len(list(csv.reader(fp))) == len(rows) + 1
    files.end_rows()  # idempotent after close
    files.close()


def test_a_ctrl_c_at_the_terminal_does_not_reach_the_process(tmp_path):
    # Ctrl+C goes to the terminal's foreground process group; the server's runner decides
    # what an interrupted export becomes (R7), not a KeyboardInterrupt in the child.
    with MetricsFilesProcess(tmp_path, ["csv"], COLUMNS, META) as files:
        assert os.getpgid(files._proc.pid) != os.getpgid(0)


def test_pipes_are_closed_however_the_process_ends(tmp_path):
    for end in ("close", "discard"):
        files = MetricsFilesProcess(tmp_path, ["csv"], COLUMNS, META)
        files.write_rows(_rows())
        getattr(files, end)()
        assert files._proc.stdin.closed and files._proc.stdout.closed, end


def test_a_process_that_cannot_start_leaves_nothing(tmp_path, monkeypatch):
    import sys

    monkeypatch.setattr(sys, "executable", str(tmp_path / "no-python"))
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    with pytest.raises(OSError):
        MetricsFilesProcess(tmp_path, ALL, COLUMNS, META, tmpdir=str(tmp))
    assert list(tmp.iterdir()) == []


def test_relative_folders_are_those_of_the_caller(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").mkdir()
    (tmp_path / "tmp").mkdir()
    with MetricsFilesProcess("out", ["csv"], COLUMNS, META, tmpdir="tmp") as files:
        files.write_rows(_rows())
    assert (tmp_path / "out" / "metrics.csv").is_file()


def test_a_full_disk_in_the_process_is_an_oserror_with_its_errno(tmp_path):
    import errno

    (tmp_path / "metrics.csv").symlink_to("/dev/full")  # every write: ENOSPC
    files = MetricsFilesProcess(tmp_path, ["csv"], COLUMNS, META)
    with pytest.raises(OSError) as raised:
        files.write_rows(_rows(5000))
        files.close()
    assert raised.value.errno == errno.ENOSPC
    assert "metrics" in str(raised.value)


def test_deflated_files_are_the_in_process_files_ready_for_the_zip(tmp_path):
    import hashlib
    import zlib

    rows = _rows(500)
    child = tmp_path / "child"
    child.mkdir()
    with MetricsFilesProcess(child, ALL, COLUMNS, META, deflate=True) as files:
        files.write_rows(rows)
        with pytest.raises(ValueError, match="not closed"):
            files.deflated()
    _in_process(tmp_path / "here", rows)
    deflated = files.deflated()
    assert list(deflated) == ALL
    assert sorted(p.name for p in child.iterdir()) == [f"metrics.{fmt}.deflate" for fmt in sorted(ALL)]  # no plain file kept
    for fmt, member in deflated.items():
        data = zlib.decompress(open(member.path, "rb").read(), -15)
        if fmt != "xlsx":  # (its core.xml holds the time it was made)
            assert data == (tmp_path / "here" / f"metrics.{fmt}").read_bytes(), fmt
        assert (member.size, member.crc, member.sha256) == (len(data), zlib.crc32(data), hashlib.sha256(data).hexdigest())
        assert member.compressed_size == os.path.getsize(member.path)
    (tmp_path / "plain").mkdir()
    with MetricsFilesProcess(tmp_path / "plain", ["csv"], COLUMNS, META) as plain:
        pass
    with pytest.raises(ValueError, match="not asked for"):
        plain.deflated()


def test_discarded_deflated_files_leave_nothing(tmp_path):
    files = MetricsFilesProcess(tmp_path, ALL, COLUMNS, META, deflate=True)
    files.write_rows(_rows(500))
    files.end_rows()
    files._proc.wait(60)  # the deflated files are there now
    assert len(list(tmp_path.iterdir())) == 3
    files.discard()
    assert list(tmp_path.iterdir()) == []
