"""Hostile COCO files (issue 16, items 2 and 3): numbers and nesting out of JSON bounds,
coordinates outside the image and its margin, too many vertices, parts or objects. The API
answers 422 naming the field and the JSON path, the CLI prints the same reasons and exits 2,
nothing is stored; 8,000 disjoint parts import (in n log n: see bench P9)."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from import_helpers import write_png
from server.imports import ImportValidationError, load_coco
from server.imports.bounds import MAX_OBJECTS_PER_IMAGE, MAX_PARTS_PER_OBJECT, MAX_VERTICES_PER_RING, margin
from tests.service.conftest import start_live
from tests.service.hostile_helpers import state_of

ROOT = Path(__file__).resolve().parents[2]
W, H = 300, 200


def _coco(annotations: str) -> str:
    """A COCO document as text (so that it can hold what json.dumps cannot write)."""
    return ('{"images": [{"id": 1, "file_name": "a.png", "width": %d, "height": %d}], '
            '"categories": [{"id": 1, "name": "cell"}], "annotations": %s}' % (W, H, annotations))


def _ann(segmentation: str, ann_id: str = "1") -> str:
    return '[{"id": %s, "image_id": 1, "category_id": 1, "segmentation": %s}]' % (ann_id, segmentation)


def triangles(n: int, per_row: int = 100) -> list[list[float]]:
    """``n`` small disjoint triangles on a grid inside a 300 x 200 image."""
    out = []
    for k in range(n):
        x, y = 1 + (k % per_row) * 2.9, 1 + (k // per_row) * 2.4
        out.append([x, y, x + 2, y, x + 1, y + 2])
    return out


CASES = {
    "nan": (_coco(_ann("[[10, NaN, 20, 10, 20, 20]]")), "annotations[0].segmentation[0][1]", "NaN"),
    "infinity": (_coco(_ann("[[10, 10, Infinity, 10, 20, 20]]")), "annotations[0].segmentation[0][2]", "Infinity"),
    "400 digits": (_coco(_ann("[[10, 10, 20, 10, 20, " + "9" * 400 + ".0]]")),
                   "annotations[0].segmentation[0][5]", "beyond the range of a float"),
    "5001-digit id": (_coco(_ann("[[10, 10, 20, 10, 20, 20]]", "1" * 5001)), "annotations[0].id", "5001 digits"),
    "deep nesting": (_coco(_ann("[" * 100_000 + "]" * 100_000)), "a.json", "deeper than 64"),
    "1e308": (_coco(_ann("[[10, 10, 1e308, 10, 20, 20]]")), "annotation 1", "outside the image"),
    "far outside": (_coco(_ann(f"[[10, 10, {W + margin(W) + 1}, 10, 20, 20]]")), "annotation 1", "outside the image"),
    "vertices": (_coco(_ann(json.dumps([[10, 10] * (MAX_VERTICES_PER_RING + 1)]))), "annotation 1",
                 f"{MAX_VERTICES_PER_RING + 1:,} vertices"),
    "parts": (_coco(_ann(json.dumps(triangles(MAX_PARTS_PER_OBJECT + 1, per_row=103)))), "annotation 1",
              f"{MAX_PARTS_PER_OBJECT + 1:,} parts"),
    "objects": (_coco(json.dumps([{"id": k, "image_id": 1, "category_id": 1, "segmentation": [[1, 1, 3, 1, 2, 3]]}
                                  for k in range(MAX_OBJECTS_PER_IMAGE + 1)])), "a.png",
                f"{MAX_OBJECTS_PER_IMAGE + 1:,} objects"),
}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    srv = start_live(tmp_path_factory.mktemp("coco-bounds") / "data")
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def image_bytes(tmp_path_factory) -> bytes:
    return write_png(tmp_path_factory.mktemp("img") / "a.png", np.full((H, W), 80, np.uint8)).read_bytes()


@pytest.mark.parametrize("case", list(CASES))
def test_the_api_refuses_a_hostile_coco_file_naming_the_place_and_stores_nothing(live, image_bytes, case):
    text, where, reason = CASES[case]
    client = live.new_user().http
    before = state_of(live.data_dir)
    r = client.post("/api/projects/import", data={"format": "coco"},
                    files=[("annotations", ("a.json", text.encode())), ("images", ("a.png", image_bytes))])
    assert r.status_code == 422, r.text[:500]
    detail = r.json()["detail"]
    hits = [d for d in detail if where in d["reason"] and reason in d["reason"]]
    assert hits and all(d["field"] == "annotations" for d in hits), detail[:5]
    assert len(r.content) < 5000
    assert state_of(live.data_dir) == before


@pytest.mark.parametrize("case", ["nan", "5001-digit id", "deep nesting", "1e308", "parts"])
def test_the_cli_prints_the_same_reasons_and_exits_2(tmp_path, image_bytes, case):
    text, where, reason = CASES[case]
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.png").write_bytes(image_bytes)
    (tmp_path / "a.json").write_text(text)
    done = subprocess.run([sys.executable, "-m", "server", "import", "coco", "--data-dir", str(tmp_path / "d"),
                           str(tmp_path / "a.json"), str(tmp_path / "imgs")],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert where in done.stderr and reason in done.stderr, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "d").exists()


def test_8000_disjoint_parts_of_one_object_are_kept_as_given(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", np.zeros((H, W), np.uint8))
    parts = triangles(8000)
    (tmp_path / "a.json").write_text(_coco(_ann(json.dumps(parts))))
    plan = load_coco(tmp_path / "a.json", tmp_path / "imgs")
    (obj,) = plan.images[0].objects
    assert len(obj.polygons) == 8000
    assert obj.polygons[0] == [[(1.0, 1.0), (3.0, 1.0), (2.0, 3.0)]]


def test_overlapping_parts_found_by_the_tree_are_still_united(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", np.zeros((H, W), np.uint8))
    parts = triangles(500) + [[50, 50, 60, 50, 60, 60, 50, 60], [55, 55, 65, 55, 65, 65, 55, 65]]
    (tmp_path / "a.json").write_text(_coco(_ann(json.dumps(parts))))
    (obj,) = load_coco(tmp_path / "a.json", tmp_path / "imgs").images[0].objects
    assert len(obj.polygons) == 501  # 500 triangles and the two squares as one


def test_a_coordinate_within_the_margin_is_kept_with_a_warning(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", np.zeros((H, W), np.uint8))
    inside = W + margin(W)
    (tmp_path / "a.json").write_text(_coco(_ann(f"[[290, 10, {inside}, 10, 290, 20]]")))
    plan = load_coco(tmp_path / "a.json", tmp_path / "imgs")
    assert plan.images[0].objects[0].polygons[0][0][1] == (float(inside), 10.0)
    assert any("outside image" in w for w in plan.warnings)
    with pytest.raises(ImportValidationError):
        (tmp_path / "a.json").write_text(_coco(_ann(f"[[-{margin(W) + 0.5}, 10, 20, 10, 20, 20]]")))
        load_coco(tmp_path / "a.json", tmp_path / "imgs")
