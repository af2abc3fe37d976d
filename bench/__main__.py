"""``python -m bench [--quick] [--only P1,P3] [--out DIR]``: run the benchmarks and rewrite
the results table of ``bench/README.md`` (and ``bench/results.json``).

``--only`` keeps the stored results of the benchmarks it does not run, so the table always
shows the last result of each. ``--quick`` is a fast smoke run (fewer runs, smaller inputs;
its numbers are labelled with the profile). ``--out`` writes README.md/results.json to
another folder (the smoke test uses a temporary one).
"""
from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench import report
from bench.common import BenchResult, machine_info, now_iso, runtime_versions, versions
from bench.env import Env

BENCHES = {
    "P1": "bench.p1_load",
    "P2": "bench.p2_crosstab",
    "P3": "bench.p3_store",
    "P4": "bench.p4_export",
    "P5": "bench.p5_cancel",
    "P6": "bench.p6_fanout",
    "P7": "bench.p7_fairness",
    "P8": "bench.p8_cluster",
    "P9": "bench.p9_hostile",
}
HERE = Path(__file__).resolve().parent


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fast smoke run: fewer runs, smaller inputs")
    parser.add_argument("--tiny", action="store_true", help=argparse.SUPPRESS)  # the pytest smoke test
    parser.add_argument("--only", default="", help="comma-separated ids, e.g. P3 or P1,P2")
    parser.add_argument("--out", type=Path, default=HERE, help="folder of README.md and results.json")
    parser.add_argument("--table-only", action="store_true",
                        help="only rewrite README.md from the stored results.json (runs nothing)")
    parser.add_argument("--no-pyodide", action="store_true", help="P3: skip the in-browser (Pyodide) run")
    args = parser.parse_args(argv)
    args.profile = "tiny" if args.tiny else "quick" if args.quick else "full"
    ids = [x.strip().upper() for x in args.only.split(",") if x.strip()] or list(BENCHES)
    unknown = [x for x in ids if x not in BENCHES]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; choose from {list(BENCHES)}")
    args.ids = ids
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks; returns 0 if all ran (whatever their verdicts), 1 if one
    crashed (the others still run and are written)."""
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    results_path = args.out / "results.json"
    stored = report.load(results_path)
    if args.table_only:
        report.rewrite_readme(args.out / "README.md", stored)
        return 0
    failed = False
    with tempfile.TemporaryDirectory(prefix="cellhub-bench-") as scratch:
        env = Env(Path(scratch), pyodide=not args.no_pyodide)
        try:
            for bench_id in args.ids:
                module = importlib.import_module(BENCHES[bench_id])
                print(f"[bench] {bench_id} ({args.profile}) ...", flush=True)
                started, t0, machine = now_iso(), time.monotonic(), machine_info()
                try:
                    result: BenchResult = module.run(args.profile, env)
                except Exception:  # noqa: BLE001 - one broken benchmark must not lose the others
                    traceback.print_exc()
                    failed = True
                    continue
                result.machine = machine
                result.versions = {**versions(runtime_versions()), **result.versions}
                result.profile, result.started_at, result.seconds = args.profile, started, time.monotonic() - t0
                # Read again: another bench run may have written its results meanwhile.
                stored = report.merge(report.load(results_path), [result])
                report.save(results_path, stored)
                report.rewrite_readme(args.out / "README.md", stored)
                print(report.table({bench_id: result}), flush=True)
        finally:
            env.close()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
