"""``python -m server import ...``: validates first, stores all or nothing."""
from __future__ import annotations

import sqlite3

import numpy as np

from import_helpers import label_scene, write_png
from server.cli import main


def _label_dataset(tmp_path):
    write_png(tmp_path / "set" / "img" / "a.png", np.zeros((40, 50), np.uint8))
    write_png(tmp_path / "set" / "img" / "b.png", np.zeros((40, 50), np.uint8))
    write_png(tmp_path / "set" / "img" / "a_cp_masks.png", label_scene())
    write_png(tmp_path / "set" / "img" / "b_cp_masks.png", label_scene()[:, ::-1].copy())
    return tmp_path / "set" / "img"


def test_dry_run_stores_nothing(tmp_path, capsys):
    folder = _label_dataset(tmp_path)
    data = tmp_path / "data"
    assert main(["import", "labels", str(folder), str(folder), "--label-suffix", "_cp_masks",
                 "--data-dir", str(data), "--dry-run"]) == 0
    assert "2 image(s), 10 object(s)" in capsys.readouterr().out
    assert not data.exists()


def test_import_persists_project_images_and_objects(tmp_path, capsys):
    folder = _label_dataset(tmp_path)
    data = tmp_path / "data"
    assert main(["import", "labels", str(folder), str(folder), "--label-suffix", "_cp_masks",
                 "--data-dir", str(data), "--name", "Scene", "--pixel-size-um", "0.65"]) == 0
    assert "imported project" in capsys.readouterr().out
    db = sqlite3.connect(data / "cellhub.sqlite3")
    assert db.execute("SELECT name, pixel_size_um, synthetic FROM projects").fetchall() == [("Scene", 0.65, 0)]
    assert db.execute("SELECT COUNT(*) FROM images").fetchone() == (2,)
    assert db.execute("SELECT COUNT(*) FROM objects").fetchone() == (10,)


def test_refused_input_exits_2_lists_problems_and_stores_nothing(tmp_path, capsys):
    folder = _label_dataset(tmp_path)
    write_png(folder / "b_cp_masks.png", np.zeros((10, 10), np.uint16))  # wrong shape
    (folder / "c.png").write_text("not an image")
    write_png(folder / "c_cp_masks.png", np.zeros((40, 50), np.uint16))
    data = tmp_path / "data"
    code = main(["import", "labels", str(folder), str(folder), "--label-suffix", "_cp_masks",
                 "--data-dir", str(data)])
    err = capsys.readouterr().err
    assert code == 2
    assert "2 problem(s)" in err and "mask shape differs" in err and "not an image file" in err
    assert not data.exists()
