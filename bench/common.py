"""What every benchmark shares: summary statistics, result rows, the machine and versions.

A benchmark returns a ``BenchResult``: its id (``P1``..``P6``), a title, the inputs it used,
``Row``s (one measure each, with its baseline measured in the same run when there is one)
and notes. ``bench.report`` turns results into the table of ``bench/README.md``.
"""
from __future__ import annotations

import json
import os
import platform
import statistics
import tomllib
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("fastapi", "uvicorn", "websockets", "pydantic", "pydantic-core", "reaktiv", "numpy",
            "pillow", "rustpy-xlsxwriter", "playwright", "httpx")


def quantile(values: Sequence[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``values`` by linear interpolation between order
    statistics (the "inclusive" definition: type 7 of Hyndman & Fan, NumPy's default).
    Raises ``ValueError`` on an empty sequence."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


@dataclass
class Summary:
    """Order statistics of ``n`` samples (same unit as the samples)."""

    n: int
    median: float
    p25: float
    p75: float
    p95: float
    min: float
    max: float

    @classmethod
    def of(cls, samples: Sequence[float]) -> "Summary":
        """Summarise ``samples`` (at least one; ``ValueError`` otherwise)."""
        values = [float(v) for v in samples]
        return cls(len(values), statistics.median(values), quantile(values, 0.25), quantile(values, 0.75),
                   quantile(values, 0.95), min(values), max(values))


@dataclass
class Row:
    """One measure. ``stat`` names the statistic the target is about (``median`` or ``p95``);
    ``ratio`` = value's stat / baseline's stat when there is a baseline; ``passed`` is None
    when the measure has no target (information only)."""

    measure: str
    unit: str
    value: Summary
    baseline: Optional[Summary] = None
    baseline_name: str = ""
    stat: str = "median"
    ratio: Optional[float] = None
    target: str = ""
    passed: Optional[bool] = None

    def judge(self, max_ratio: Optional[float] = None, min_ratio: Optional[float] = None,
              below: Optional[float] = None) -> "Row":
        """Compute ``ratio`` (if there is a baseline) and ``passed`` against one target:
        ``ratio <= max_ratio``, ``ratio >= min_ratio`` or ``stat < below`` (in ``unit``)."""
        mine = getattr(self.value, self.stat)
        if self.baseline is not None:
            base = getattr(self.baseline, self.stat)
            self.ratio = mine / base if base else float("inf")
        if max_ratio is not None and self.ratio is not None:
            self.target = f"{self.stat} ratio <= {max_ratio:g}x"
            self.passed = self.ratio <= max_ratio
        elif min_ratio is not None and self.ratio is not None:
            self.target = f"{self.stat} ratio >= {min_ratio:g}x"
            self.passed = self.ratio >= min_ratio
        elif below is not None:
            self.target = f"{self.stat} < {below:g} {self.unit}"
            self.passed = mine < below
        return self


@dataclass
class BenchResult:
    """What one benchmark measured, with where and on what."""

    id: str
    title: str
    inputs: dict[str, Any]
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    machine: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    profile: str = "full"
    started_at: str = ""
    seconds: float = 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "BenchResult":
        rows = []
        for r in data.get("rows", []):
            r = dict(r)
            r["value"] = Summary(**r["value"])
            r["baseline"] = Summary(**r["baseline"]) if r.get("baseline") else None
            rows.append(Row(**r))
        return cls(**{**data, "rows": rows})


def machine_info() -> dict[str, Any]:
    """Cores, memory, CPU model (``/proc/cpuinfo``), OS and the load average at the time."""
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        load = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        load = []
    return {"cpu_model": model, "cores": os.cpu_count(), "memory_gib": mem_gib,
            "os": f"{platform.system()} {platform.release()}", "load_avg_1_5_15": load}


def runtime_versions() -> dict[str, str]:
    """The pinned browser runtime (Pyodide, PyScript from ``package-lock.json``) and the
    wheels served to the page (``static/wheels/wheels.json``)."""
    out: dict[str, str] = {}
    try:
        lock = json.loads((ROOT / "package-lock.json").read_text())["packages"]
        out["pyodide"] = lock["node_modules/pyodide"]["version"]
        out["pyscript"] = lock["node_modules/@pyscript/core"]["version"]
    except (OSError, KeyError, ValueError):
        pass
    try:
        out["browser_wheels"] = ", ".join(json.loads((ROOT / "static" / "wheels" / "wheels.json").read_text()))
    except (OSError, ValueError):
        pass
    return out


def versions(extra: Optional[dict[str, str]] = None) -> dict[str, str]:
    """Python and the installed versions of ``PACKAGES`` (plus ``extra``)."""
    out = {"python": f"{platform.python_implementation()} {platform.python_version()}"}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = "not installed"
    out.update(extra or {})
    return out


def interpreter_url() -> str:
    """The Pyodide module URL the export page uses (``interpreter`` of ``pyscript.toml``)."""
    return tomllib.loads((ROOT / "pyscript.toml").read_text())["interpreter"]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def alternate(names: Sequence[str], runs: int, body: Callable[[str, int], None]) -> None:
    """Call ``body(name, run)`` for ``runs`` rounds over ``names``, rotating the order each
    round, so slow drifts of a shared machine hit every variant alike."""
    for run in range(runs):
        k = run % len(names)
        for name in list(names[k:]) + list(names[:k]):
            body(name, run)
