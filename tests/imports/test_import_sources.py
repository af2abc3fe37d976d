"""Source identity (issue 19): every imported object keeps what identified it in the input (label
value, mask file name, colour and first pixel, COCO annotation id); it is stored with the
project, with the import's warnings, and survives a COCO round trip through the hub's export."""
from __future__ import annotations

import json
import re
import shutil

import numpy as np
from sqlalchemy import inspect

from server import migrate
from server.archive.coco import coco_dict
from server.db import Database
from server.imaging import read_image
from server.imports import load_coco, load_dsb_folders, load_label_images, load_patch_labels
from server.imports.labels import pair_by_stem
from server.project_store import load_project
from server.projects import persist_project


def _stardist(cells_dir):
    root = cells_dir / "stardist_dsb2018"
    return [(root / "tests/data/img2d.tif", root / "tests/data/mask2d.tif")]


def test_label_images_keep_the_label_value(cells_dir):
    plan = load_label_images(_stardist(cells_dir))
    labels = read_image(_stardist(cells_dir)[0][1])
    image = plan.images[0]
    assert [o.source for o in image.objects] == [int(v) for v in np.unique(labels)[1:]]
    assert all(isinstance(o.source, int) for o in image.objects)


def test_dsb_objects_keep_their_mask_file_name(cells_dir):
    plan = load_dsb_folders(cells_dir / "bbbc038_dsb2018" / "stage1_train")
    for image in plan.images[:3]:
        masks = sorted(p.name for p in (cells_dir / "bbbc038_dsb2018/stage1_train" / image.file_name[:-4] / "masks")
                       .iterdir() if not p.name.startswith("."))
        assert [o.source for o in image.objects] == masks


def test_colour_patches_keep_their_colour_and_first_pixel(cells_dir):
    pairs = [p for p in pair_by_stem(cells_dir / "bbbc039_u2os/images", cells_dir / "bbbc039_u2os/masks")
             if "P23_s7" in p[0].name]
    plan = load_patch_labels(pairs)
    mask = read_image(pairs[0][1])
    seen = set()
    for obj in plan.images[0].objects:
        found = re.fullmatch(r"#([0-9a-f]{6}) at \((\d+), (\d+)\)", obj.source)
        assert found, obj.source
        colour, x, y = int(found[1], 16), int(found[2]), int(found[3])
        assert tuple(mask[y, x, :3]) == (colour >> 16, colour >> 8 & 255, colour & 255)
        # The first pixel in reading order of the object's own patch: nothing of the object before it.
        inside = [(px, py) for rings in obj.polygons for px, py in rings[0]]
        assert min(py for _, py in inside) == y  # the outline's top is that pixel's row
        seen.add(obj.source)
    assert len(seen) == len(plan.images[0].objects) == 12


def test_sources_and_import_warnings_are_stored_and_loaded(tmp_path, cells_dir):
    pairs = [p for p in pair_by_stem(cells_dir / "bbbc039_u2os/images", cells_dir / "bbbc039_u2os/masks")
             if "F13_s7" in p[0].name or "P23_s7" in p[0].name]
    plan = load_patch_labels(pairs)
    project = plan.to_project()
    assert project.import_warnings and any("no objects" in w for w in project.import_warnings)
    db = Database(tmp_path / "db.sqlite3")
    project_id = persist_project(db, tmp_path / "files", project, plan.sources())
    back = load_project(db, project_id, tmp_path / "files")
    assert back.import_warnings == plan.warnings
    assert [[o.source for o in im.objects] for im in back.images] == [[o.source for o in im.objects]
                                                                       for im in plan.images]
    assert [o.id for o in back.images[1].objects] == list(range(1, 13))  # numbered 1..n, the source kept


def test_a_data_folder_from_before_sources_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.sqlite3"
    old = Database(path, migrate=False)
    migrate.upgrade(old, "0003")  # the schema before sources and import warnings
    old.execute("INSERT INTO projects(id, name, categories_json, created_at) VALUES (1, 'old', '[\"c\"]', '2026')")
    old.execute("INSERT INTO images VALUES (1, 1, 0, 'a.png', 4, 4, 'p1/a.png')")
    old.execute("INSERT INTO objects VALUES (1, 1, 1, 'c', '[[[[0,0],[2,0],[2,2]]]]')")
    old.dispose()
    db = Database(path)  # opening it runs the migration that adds the two columns
    assert migrate.current_revision(db) == migrate.head_revision()
    project = load_project(db, 1, tmp_path)
    assert project.import_warnings == [] and project.images[0].objects[0].source is None
    assert project.images[0].objects[0].polygons == [[[(0, 0), (2, 0), (2, 2)]]]
    migrate.downgrade(db, "0003")  # and back, for a server of the version before
    assert "source_json" not in {c["name"] for c in inspect(db.engine).get_columns("objects")}
    assert db.all("SELECT name FROM projects") == [{"name": "old"}]  # its rows kept both ways


def test_a_coco_round_trip_keeps_the_first_import_s_sources(tmp_path, cells_dir):
    plan = load_label_images(_stardist(cells_dir))
    data = coco_dict(plan.to_project(), plan.images)
    assert [a["source"] for a in data["annotations"]] == [o.source for o in plan.images[0].objects]
    (tmp_path / "images").mkdir()
    shutil.copyfile(plan.images[0].path, tmp_path / "images" / data["images"][0]["file_name"])
    (tmp_path / "a.json").write_text(json.dumps(data))
    back = load_coco(tmp_path / "a.json", tmp_path / "images")
    assert [o.source for o in back.images[0].objects] == [o.source for o in plan.images[0].objects]
    # A COCO file from elsewhere (no source key, or an unusable one): the annotation id.
    for ann in data["annotations"]:
        ann.pop("source")
    data["annotations"][0]["source"] = {"not": "kept"}
    (tmp_path / "b.json").write_text(json.dumps(data))
    back = load_coco(tmp_path / "b.json", tmp_path / "images")
    assert [o.source for o in back.images[0].objects] == [a["id"] for a in data["annotations"]]
