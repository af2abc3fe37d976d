"""P4: export throughput of ``write_archive`` and its peak memory, 100 vs 500 images.

Input: ``bench.synthetic.make_project`` (500 images of 256x256 px, 50 objects each, built in
memory, no database). Configurations:

- ``ann``: COCO + YOLO + project JSON;
- ``annmet``: the same plus metrics CSV + XLSX + JSON (pixel size 0.5 um) (the target);
- ``vis``: ``annmet`` plus visualizations (one overlay PNG per image).

Baseline, same process, right after each archive: the member contents of that very archive
(read back into memory first, untimed) written into a new zip with the same compression
(``ZIP_DEFLATED``, zlib's default level, as ``write_archive`` uses). So the ratio is the cost
of producing the content over the cost of merely compressing and writing it.

Memory: each (configuration, size) runs in a fresh child process; the peak resident set
growth during ``write_archive`` is ``VmHWM`` after it (reset through
``/proc/self/clear_refs`` just before) minus ``VmRSS`` before it; the project itself is
built before, so only what the export allocates counts. With metrics, the growth of the
metrics process (``metrics_process``) is added: its peak RSS (``RUSAGE_CHILDREN``) minus that
of a metrics process given no rows, measured first in the same child. The first run of each child is the
one compared (later runs reuse memory the first one freed).
"""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchResult, Row, Summary

PROFILES = {
    "full": {"big": 500, "small": 100, "objects": 50, "size": 256, "reps": {"ann": 3, "annmet": 3, "vis": 2},
             "subprocess": True},
    "quick": {"big": 100, "small": 20, "objects": 50, "size": 256, "reps": {"ann": 1, "annmet": 1, "vis": 1},
              "subprocess": True},
    "tiny": {"big": 5, "small": 2, "objects": 10, "size": 128, "reps": {"ann": 1, "annmet": 1, "vis": 1},
             "subprocess": False},
}
TARGET_RATIO = 2.0
FLAT_RATIO = 1.5
CONFIGS = {
    "ann": {"annotation_formats": ["coco", "yolo", "json"], "metrics_formats": []},
    "annmet": {"annotation_formats": ["coco", "yolo", "json"], "metrics_formats": ["csv", "xlsx", "json"],
               "pixel_size_um": 0.5},
    "vis": {"annotation_formats": ["coco", "yolo", "json"], "metrics_formats": ["csv", "xlsx", "json"],
            "pixel_size_um": 0.5, "include_visualizations": True},
}
LABELS = {"ann": "COCO+YOLO+JSON", "annmet": "COCO+YOLO+JSON+metrics (CSV, XLSX, JSON)",
          "vis": "annotations+metrics+visualizations"}


def _status_kib(field: str) -> int:
    m = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    return int(m.group(1)) if m else 0


def _reset_peak() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def baseline_zip(members: list[tuple[str, bytes]], dest: Path, date_time: tuple) -> None:
    """Write ``members`` (name, content) into a new zip at ``dest``, deflated at zlib's
    default level: the P4 baseline."""
    with zipfile.ZipFile(dest, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as zf:
        for name, data in members:
            info = zipfile.ZipInfo(name, date_time)
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)


def _children_peak_kib() -> int:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss  # KiB on Linux, over waited children


def _idle_metrics_process_kib(options: Any, work: Path) -> int:
    """Peak RSS of a metrics process given no rows (its interpreter, its libraries): what the
    archive's own metrics process is compared with, so only its growth with the rows counts."""
    from server.archive.metrics import column_docs
    from server.archive.metrics_process import MetricsFilesProcess

    idle = work / "idle"
    idle.mkdir()
    MetricsFilesProcess(idle, options.metrics_formats, column_docs(options.pixel_size_um)).close()
    shutil.rmtree(idle)
    return _children_peak_kib()


def xlsx_alone(metrics_csv: bytes, options: Any, work: Path) -> float:
    """Seconds the XLSX library (rustpy-xlsxwriter) alone takes to write ``metrics.xlsx`` of the
    archive's own metrics rows (read back from its ``metrics.csv``, untimed) through
    ``XlsxMetricsWriter`` with the export's options, in-process: the workbook's share of the
    metrics process's work."""
    import csv
    import io

    from server.archive.metrics import ID_COLUMNS, column_docs
    from server.archive.metrics_io import XlsxMetricsWriter

    reader = csv.reader(io.StringIO(metrics_csv.decode("utf-8")))
    next(reader)
    ids = len(ID_COLUMNS)  # image_id, image_file, object_id, source_id, category
    rows = [[int(r[0]), r[1], int(r[2]), r[3] or None, r[4], *(float(v) if v else None for v in r[ids:])]
            for r in reader]
    dest = work / "alone.xlsx"
    t0 = time.perf_counter()
    writer = XlsxMetricsWriter(str(dest), column_docs(options.pixel_size_um))
    for at in range(0, len(rows), 25):  # as the archive writer hands them over
        writer.write_rows(rows[at:at + 25])
    writer.close()
    seconds = time.perf_counter() - t0
    dest.unlink()
    return seconds


def worker(images: int, objects: int, size: int, config: str, reps: int, scratch: str) -> dict:
    """Build the project, then ``reps`` times: the archive (timed, memory) and the baseline
    (timed). Returns ``{seconds, baseline_seconds, rss_growth_mib, archive_bytes, members,
    content_bytes, objects, peak_reset}``."""
    from app.models import ExportOptions
    from bench.synthetic import make_project
    from server.archive.writer import write_archive

    work = Path(scratch)
    project = make_project(images, objects, work / "img", size=size)
    options = ExportOptions(**CONFIGS[config])
    idle_child_kib = _idle_metrics_process_kib(options, work) if options.metrics_formats else 0
    out: dict[str, Any] = {"seconds": [], "baseline_seconds": [], "rss_growth_mib": [], "archive_bytes": 0,
                           "members": 0, "content_bytes": 0, "objects": images * objects}
    for rep in range(reps):
        dest = work / f"archive-{rep}.zip"
        stages: dict[str, float] = {}

        def checkpoint(stage: str, _fraction: float, _message: str) -> None:
            if stage not in stages:
                stages[stage] = time.perf_counter()

        out["peak_reset"] = _reset_peak()
        rss0 = _status_kib("VmRSS")
        t0 = time.perf_counter()
        write_archive(project, project.images, options, dest, checkpoint, tmpdir=str(work))
        end = time.perf_counter()
        out["seconds"].append(end - t0)
        if rep == 0:
            marks = sorted(stages.items(), key=lambda kv: kv[1]) + [("end", end)]
            out["stage_seconds"] = {name: marks[i + 1][1] - t for i, (name, t) in enumerate(marks[:-1])}
        growth_kib = _status_kib("VmHWM") - rss0
        if idle_child_kib:  # plus the metrics process's own growth over an idle one's peak
            growth_kib += max(0, _children_peak_kib() - idle_child_kib)
        out["rss_growth_mib"].append(growth_kib / 1024)
        with zipfile.ZipFile(dest) as zf:
            members = [(i.filename, zf.read(i)) for i in zf.infolist()]
            date_time = zf.infolist()[0].date_time
        out["archive_bytes"] = dest.stat().st_size
        out["members"] = len(members)
        out["content_bytes"] = sum(len(d) for _, d in members)
        base = work / f"baseline-{rep}.zip"
        t0 = time.perf_counter()
        baseline_zip(members, base, date_time)
        out["baseline_seconds"].append(time.perf_counter() - t0)
        if "xlsx" in options.metrics_formats:
            csv_bytes = dict(members)["metrics/metrics.csv"]
            out["metrics_rows"] = csv_bytes.count(b"\n") - 1
            out.setdefault("xlsx_seconds", []).append(xlsx_alone(csv_bytes, options, work))
        del members
        dest.unlink()
        base.unlink()
    return out


def _run_worker(images: int, objects: int, size: int, config: str, reps: int, in_child: bool) -> dict:
    with tempfile.TemporaryDirectory(prefix="cellhub-p4-") as scratch:
        if not in_child:
            return worker(images, objects, size, config, reps, scratch)
        spec = json.dumps({"images": images, "objects": objects, "size": size, "config": config, "reps": reps,
                           "scratch": scratch})
        proc = subprocess.run([sys.executable, "-m", "bench.p4_export", spec], cwd=ROOT, capture_output=True,
                              text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"P4 worker failed:\n{proc.stderr[-4000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def run(profile: str, env: Any) -> BenchResult:
    """Measure P4 (``profile``: full, quick or tiny); ``env`` is unused (no server, no browser)."""
    p = PROFILES[profile]
    big, small, objects, size = p["big"], p["small"], p["objects"], p["size"]
    result = BenchResult("P4", "Export throughput (write_archive) vs zipping the same bytes; peak memory", {
        "project": f"{big} images of {size}x{size} px (8-bit noise PNG), {objects} objects each (16-gons, "
                   f"1 in 10 with a hole), built in memory (bench/synthetic.py)",
        "configurations": "; ".join(f"{k}: {v}" for k, v in LABELS.items()),
        "runs": ", ".join(f"{k} {v}" for k, v in p["reps"].items()),
        "memory": f"{small} vs {big} images, first run in a fresh child process",
    })
    runs: dict[tuple[str, int], dict] = {}
    for config in ("ann", "annmet", "vis"):
        runs[(config, big)] = _run_worker(big, objects, size, config, p["reps"][config], p["subprocess"])
    for config in ("annmet", "vis"):
        runs[(config, small)] = _run_worker(small, objects, size, config, 1, p["subprocess"])

    for config in ("annmet", "ann", "vis"):
        r = runs[(config, big)]
        row = Row(f"{LABELS[config]}, {big} images", "s", Summary.of(r["seconds"]), Summary.of(r["baseline_seconds"]),
                  "zip of the same member bytes")
        result.rows.append(row.judge(max_ratio=TARGET_RATIO) if config == "annmet" else row.judge())
        med = Summary.of(r["seconds"]).median
        result.notes.append(
            f"{config}, {big} images: archive {r['archive_bytes'] / 1048576:.1f} MiB ({r['members']} members, "
            f"{r['content_bytes'] / 1048576:.1f} MiB uncompressed); {big / med:.1f} images/s, "
            f"{r['objects'] / med:.0f} objects/s; first run by stage: "
            + ", ".join(f"{k} {v:.1f} s" for k, v in r.get("stage_seconds", {}).items()))
    annmet = runs[("annmet", big)]
    if annmet.get("xlsx_seconds"):
        result.rows.append(Row(f"the XLSX library alone writing the archive's metrics.xlsx (in-process), {big} images", "s",
                               Summary.of(annmet["xlsx_seconds"]), Summary.of(annmet["baseline_seconds"]),
                               "zip of the same member bytes").judge())
        result.notes.append(
            f"annmet, {big} images: the XLSX library alone (rustpy-xlsxwriter through XlsxMetricsWriter) "
            f"on the archive's {annmet['metrics_rows']} metrics rows, in this process: median "
            f"{Summary.of(annmet['xlsx_seconds']).median:.2f} s. The archive runs it in a child process "
            "(server/archive/metrics_process.py) beside everything else, so on 2 or more free cores it costs "
            "the archive only what the rest does not cover")
    for config in ("annmet", "vis"):
        grow_big = runs[(config, big)]["rss_growth_mib"][0]
        grow_small = runs[(config, small)]["rss_growth_mib"][0]
        result.rows.append(Row(f"peak RSS growth, {config}: {big} vs {small} images", "MiB", Summary.of([grow_big]),
                               Summary.of([grow_small]), f"{small} images").judge(max_ratio=FLAT_RATIO))
    if not all(r.get("peak_reset", True) for r in runs.values()):
        result.notes.append("/proc/self/clear_refs was not writable: peaks include the project build")
    result.notes.append(f"'flat' memory is read as: growth at {big} images <= {FLAT_RATIO}x the growth at {small}.")
    return result


if __name__ == "__main__":
    spec = json.loads(sys.argv[1])
    print(json.dumps(worker(**spec)))
