"""The YOLO folder is one Ultralytics loads with no edits (issue 19, part 1).

Ultralytics itself is not installed for the tests (it would bring torch, gigabytes, into CI):
the archive is checked against the rules its dataset loader follows, as documented in the
"Instance Segmentation Datasets Overview" (docs.ultralytics.com/datasets/segment) and read in
``ultralytics.data.utils`` of ultralytics 8.4.190:
- ``check_det_dataset``: ``train``, ``val`` and ``names`` (or ``nc``) are required; the dataset
  root is the ``path`` key if it is set (a relative one taken from the working directory, or
  else from the datasets folder), and the yaml's own folder when it is empty or missing; each
  of ``train``/``val`` is a folder relative to that root;
- ``img2label_paths``: an image's label file is its path with the last ``/images/`` replaced by
  ``/labels/`` and the extension by ``.txt``;
- ``verify_image_label``: a segment line is a class index below the class count and at least
  3 points, every coordinate within 0..1.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest
import yaml

from app.models import ExportOptions
from archive_helpers import read_labels
from server.archive import write_archive

IMAGE_SUFFIXES = {".bmp", ".dng", ".jpeg", ".jpg", ".mpo", ".png", ".tif", ".tiff", ".webp", ".pfm", ".heic"}


def dataset_root(yaml_file: Path, data: dict) -> Path:
    """The dataset root as Ultralytics resolves it (see the module docstring)."""
    if data.get("path"):
        return Path(data["path"]).resolve()  # relative to the working directory: not what we want
    return yaml_file.parent.resolve()


def label_path(image: Path) -> Path:
    """``img2label_paths`` for one image."""
    text = str(image)
    sep_images, sep_labels = f"{os.sep}images{os.sep}", f"{os.sep}labels{os.sep}"
    head, found, tail = text.rpartition(sep_images)
    assert found, f"{image} is not under an images folder"
    return Path((head + sep_labels + tail).rsplit(".", 1)[0] + ".txt")


def _unpacked(tmp_path, project, include_images=True) -> Path:
    dest = tmp_path / "export.zip"
    write_archive(project, project.images, ExportOptions(annotation_formats=["coco", "yolo"],
                                                         include_images=include_images), dest, lambda *_: None)
    with zipfile.ZipFile(dest) as zf:
        zf.extractall(tmp_path / "unpacked")
    return tmp_path / "unpacked"


@pytest.mark.parametrize("which", ["synthetic_project", "real_project"])
def test_ultralytics_finds_every_image_and_its_label_with_no_edits(tmp_path, monkeypatch, request, which):
    project = request.getfixturevalue(which)
    unpacked = _unpacked(tmp_path, project)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # a user training from another folder: yolo train data=.../yolo/data.yaml
    yaml_file = unpacked / "yolo" / "data.yaml"
    data = yaml.safe_load(yaml_file.read_text())
    assert {"path", "train", "val", "names"} <= set(data)
    assert data["path"] == ""  # the yaml's folder, from any working directory
    root = dataset_root(yaml_file, data)
    assert root == (unpacked / "yolo").resolve()
    names = data["names"]
    assert sorted(names) == list(range(len(names))) and data["nc"] == len(names)
    for split in ("train", "val"):
        folder = root / data[split]
        assert folder.is_dir() and folder.name == "images"
        images = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        assert len(images) == len(project.images)
        for image in images:
            labels = label_path(image)
            assert labels.is_file() and labels.parent == root / "labels" and labels.stem == image.stem
            lines = read_labels(labels.read_text(), len(names))
            assert all(0 <= cls < len(names) for cls, _ in lines)
    label_stems = {p.stem for p in (root / "labels").iterdir()}
    assert label_stems == {p.stem for p in (root / "images").iterdir()}  # no label without its image


def test_without_images_the_readme_says_where_they_go(tmp_path, synthetic_project):
    unpacked = _unpacked(tmp_path, synthetic_project, include_images=False)
    assert not (unpacked / "yolo" / "images").exists()
    readme = (unpacked / "README.md").read_text()
    assert "put them in `yolo/images/`" in readme
    assert len(list((unpacked / "yolo" / "labels").iterdir())) == len(synthetic_project.images)
