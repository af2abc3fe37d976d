"""Checks of the project's shape that other parts rely on."""
from __future__ import annotations

import ast
import json
import re
import tomllib
import zipfile
import io
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_the_core_never_imports_js_or_pyodide():
    core = [p for p in (ROOT / "app").rglob("*.py") if "browser" not in p.relative_to(ROOT / "app").parts]
    assert len(core) >= 5
    offenders = {str(p.relative_to(ROOT)): sorted(_imports(p) & {"js", "pyodide", "pyodide_js"}) for p in core}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_the_core_imports_only_stdlib_pydantic_and_itself():
    import sys

    allowed = set(sys.stdlib_module_names) | {"pydantic", "app", "__future__"}
    core = [p for p in (ROOT / "app").rglob("*.py") if "browser" not in p.relative_to(ROOT / "app").parts]
    bad = {str(p.relative_to(ROOT)): sorted(_imports(p) - allowed) for p in core}
    assert {k: v for k, v in bad.items() if v} == {}


def test_pinned_runtime_versions_agree_everywhere():
    lock = json.loads((ROOT / "package-lock.json").read_text())
    pyodide = lock["packages"]["node_modules/pyodide"]["version"]
    pyscript = lock["packages"]["node_modules/@pyscript/core"]["version"]
    assert pyodide.startswith("314.")
    config = tomllib.loads((ROOT / "pyscript.toml").read_text())
    assert config["interpreter"] == f"/static/vendor/pyodide/{pyodide}/pyodide.mjs"
    index = (ROOT / "index.html").read_text()
    assert f"/static/vendor/pyscript/{pyscript}/core.js" in index
    assert f"/static/vendor/pyscript/{pyscript}/core.css" in index
    assert not re.search(r"(src|href)=\"https?://", index)


def test_browser_wheels_are_pinned_with_hashes():
    lines = [
        line for line in (ROOT / "browser-requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    names = {line.split("==")[0] for line in lines}
    assert {"pydantic", "pydantic-core", "typing-extensions", "typing-inspection", "annotated-types"} <= names
    assert all(re.search(r"==[\w.]+ --hash=sha256:[0-9a-f]{64}$", line) for line in lines)


def test_the_app_zip_holds_every_module_of_the_app_package():
    from server.page_assets import build_app_zip

    names = set(zipfile.ZipFile(io.BytesIO(build_app_zip())).namelist())
    expected = {p.relative_to(ROOT / "app").as_posix() for p in (ROOT / "app").rglob("*.py") if "__pycache__" not in p.parts}
    assert expected <= names
    assert not any("__pycache__" in n for n in names)


def test_the_app_zip_depends_on_the_sources_only_not_on_file_times(tmp_path):
    """A fresh clone (new file times) serves the same zip, so the browser's cache and the
    bytecode bundle (keyed by a hash of the zip) carry over; a changed source changes it."""
    import shutil

    from server.page_assets import build_app_zip

    shutil.copytree(ROOT / "app", tmp_path / "app", ignore=shutil.ignore_patterns("__pycache__"))
    first = build_app_zip(tmp_path)
    store = tmp_path / "app" / "store" / "nodes.py"
    os.utime(store, (1_000_000_000, 1_000_000_000))
    assert build_app_zip(tmp_path) == first
    store.write_text(store.read_text() + "\n")
    assert build_app_zip(tmp_path) != first
