"""Label-image, patch-label and DSB imports on small synthetic files: what is accepted, and
that every problem of a bad input is reported in one ImportValidationError."""
from __future__ import annotations

import numpy as np
import pytest

from server.imports import ImportValidationError, load_dsb_folders, load_label_images, load_patch_labels
from server.imports.labels import pair_by_stem

from import_helpers import label_scene, write_png, write_tiff


def _problems(call) -> list[str]:
    with pytest.raises(ImportValidationError) as err:
        call()
    return err.value.problems


# ---- integer label images ----------------------------------------------------------------

def test_label_images_of_all_widths_and_non_consecutive_ids(tmp_path):
    lab = label_scene()
    image = write_png(tmp_path / "ds" / "images" / "a.png", np.full(lab.shape, 9, np.uint8))
    for dtype, writer, suffix in ((np.uint8, write_png, ".png"), (np.uint16, write_png, ".png"),
                                  (np.uint32, write_tiff, ".tif"), (np.int32, write_tiff, ".tif"),
                                  (np.float32, write_tiff, ".tif")):
        label_path = writer(tmp_path / f"lab_{np.dtype(dtype).name}{suffix}", lab.astype(dtype))
        plan = load_label_images([(image, label_path)], pixel_size_um=0.5)
        (im,) = plan.images
        assert [o.id for o in im.objects] == [3, 7, 12, 20, 40], dtype
        assert [len(o.polygons) for o in im.objects] == [1, 1, 2, 1, 1]
        assert len(im.objects[1].polygons[0]) == 2  # the ring keeps its hole
        assert (im.width, im.height) == (50, 40) and im.path == str(image)
    assert plan.name == "ds" and plan.pixel_size_um == 0.5 and plan.source_format == "label-images"


def test_big_label_values_and_grey_stored_as_rgb(tmp_path):
    lab = np.zeros((10, 10), np.uint32)
    lab[1:4, 1:4] = 4_000_000_000
    image = write_png(tmp_path / "i.png", np.zeros((10, 10, 3), np.uint8))
    (im,) = load_label_images([(image, write_tiff(tmp_path / "l.tif", lab))]).images
    assert [o.id for o in im.objects] == [4_000_000_000]
    rgb = np.repeat((label_scene() % 256).astype(np.uint8)[..., None], 3, axis=2)
    (im,) = load_label_images([(write_png(tmp_path / "s.png", np.zeros((40, 50), np.uint8)),
                                write_png(tmp_path / "rgb.png", rgb))]).images
    assert len(im.objects) == 5


def test_label_problems_are_all_reported(tmp_path):
    ok_image = write_png(tmp_path / "ok.png", np.zeros((20, 20), np.uint8))
    good = np.zeros((20, 20), np.uint16)
    good[2:5, 2:5] = 1
    colour = np.zeros((20, 20, 3), np.uint8)
    colour[2:5, 2:5, 0] = 1
    notes = tmp_path / "notes.tif"
    notes.write_text("not an image")
    pairs = [
        (tmp_path / "missing.png", write_png(tmp_path / "l1.png", good)),
        (ok_image, tmp_path / "missing_label.png"),
        (ok_image, write_png(tmp_path / "small.png", good[:10])),
        (ok_image, notes),
        (ok_image, write_png(tmp_path / "colour.png", colour)),
        (ok_image, write_tiff(tmp_path / "frac.tif", good.astype(np.float32) * 0.5)),
        (ok_image, write_tiff(tmp_path / "neg.tif", -good.astype(np.int16))),
    ]
    problems = _problems(lambda: load_label_images(pairs))
    expected = ["missing image file", "missing label image file", "mask shape differs from image",
                "not an image file (label image)", "in colour", "non-integer", "negative values"]
    assert len(problems) == len(expected)
    for fragment, problem in zip(expected, problems):
        assert fragment in problem
    assert "small.png is 20x10 (WxH)" in problems[2]
    assert _problems(lambda: load_label_images([])) == ["no images given"]
    assert _problems(lambda: load_label_images([], pixel_size_um=0.0, tolerance=-1)) == [
        "pixel size 0.0 um is outside 0.001..1000",
        "simplification tolerance -1 px is negative",
        "no images given",
    ]


def test_file_size_limit(tmp_path):
    image = write_png(tmp_path / "i.png", np.random.default_rng(0).integers(0, 255, (64, 64), dtype=np.uint8))
    label = write_png(tmp_path / "l.png", np.zeros((64, 64), np.uint8))
    limit = label.stat().st_size + 1  # the noisy image is far bigger than the flat label
    problems = _problems(lambda: load_label_images([(image, label)], max_file_bytes=limit))
    assert len(problems) == 1 and "image file too large" in problems[0] and f"limit is {limit}" in problems[0]


def test_empty_label_image_gives_image_without_objects(tmp_path):
    plan = load_label_images([(write_png(tmp_path / "i.png", np.zeros((8, 8), np.uint8)),
                               write_png(tmp_path / "l.png", np.zeros((8, 8), np.uint16)))])
    assert plan.images[0].objects == [] and "no objects" in plan.warnings[0]


def test_pair_by_stem(tmp_path):
    for stem in ("a", "b", "c"):
        write_png(tmp_path / "img" / f"{stem}.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "lab" / "a_cp_masks.png", np.zeros((4, 4), np.uint8))
    write_tiff(tmp_path / "lab" / "b_cp_masks.tif", np.zeros((4, 4), np.uint16))
    (tmp_path / "img" / ".DS_Store").write_text("x")
    problems = _problems(lambda: pair_by_stem(tmp_path / "img", tmp_path / "lab", label_suffix="_cp_masks"))
    assert problems == [f"no label file for image c.png (expected c_cp_masks.* in {tmp_path / 'lab'})"]
    (tmp_path / "img" / "c.png").unlink()
    pairs = pair_by_stem(tmp_path / "img", tmp_path / "lab", label_suffix="_cp_masks")
    assert [(i.name, m.name) for i, m in pairs] == [("a.png", "a_cp_masks.png"), ("b.png", "b_cp_masks.tif")]
    # cellpose keeps masks next to their images
    write_png(tmp_path / "img" / "a_cp_masks.png", np.zeros((4, 4), np.uint8))
    write_png(tmp_path / "img" / "b_cp_masks.png", np.zeros((4, 4), np.uint8))
    assert len(pair_by_stem(tmp_path / "img", tmp_path / "img", label_suffix="_cp_masks")) == 2
    assert "missing folder" in _problems(lambda: pair_by_stem(tmp_path / "nope", tmp_path / "lab"))[0]


# ---- colour-coded patches (BBBC039 style) ------------------------------------------------

def _patch_mask():
    red = np.zeros((12, 12), np.uint8)
    red[1:4, 1:4] = 1      # touches the next patch: different value, so two objects
    red[1:4, 4:7] = 2
    red[8:10, 1:3] = 1     # same value again, separate: a third object
    red[8, 8] = 3          # diagonal pair of one value: 1 object (8-conn) or 2 (4-conn)
    red[9, 9] = 3
    rgba = np.zeros((12, 12, 4), np.uint8)
    rgba[..., 0] = red
    rgba[..., 3] = 255
    return rgba


def test_patch_labels_split_by_value_and_connectivity(tmp_path):
    image = write_png(tmp_path / "i.png", np.zeros((12, 12), np.uint16))
    mask = write_png(tmp_path / "m.png", _patch_mask())
    four = load_patch_labels([(image, mask)])
    eight = load_patch_labels([(image, mask)], connectivity=8)
    assert len(four.images[0].objects) == 5
    assert len(eight.images[0].objects) == 4
    assert len(eight.images[0].objects[-1].polygons) == 2  # one object, two diagonal pieces
    assert [o.id for o in four.images[0].objects] == [1, 2, 3, 4, 5]
    with pytest.raises(ValueError):
        load_patch_labels([(image, mask)], connectivity=6)


def test_patch_labels_any_colour_and_transparent_background(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[1:4, 1:4] = (200, 10, 30, 255)
    rgba[1:4, 4:7] = (200, 10, 31, 255)  # differs in blue only
    rgba[6:9, 6:9] = (90, 90, 90, 0)    # fully transparent: background
    plan = load_patch_labels([(write_png(tmp_path / "i.png", np.zeros((10, 10), np.uint8)),
                               write_png(tmp_path / "m.png", rgba))])
    assert len(plan.images[0].objects) == 2


def test_patch_label_problems(tmp_path):
    image = write_png(tmp_path / "i.png", np.zeros((12, 12), np.uint8))
    (tmp_path / "m.txt").write_text("1 2 3")
    problems = _problems(lambda: load_patch_labels([
        (image, write_png(tmp_path / "wide.png", np.zeros((12, 13), np.uint8))),
        (image, tmp_path / "m.txt"),
    ]))
    assert "mask shape differs from image" in problems[0] and "not an image file (mask)" in problems[1]


# ---- DSB folders ---------------------------------------------------------------------------

def _dsb(root, name, shape=(16, 16), masks=()):
    write_png(root / name / "images" / f"{name}.png", np.zeros(shape + (4,), np.uint8) + 255)
    for k, mask in enumerate(masks):
        write_png(root / name / "masks" / f"m{k}.png", mask)


def _blob(shape, r0, r1, c0, c1):
    m = np.zeros(shape, np.uint8)
    m[r0:r1, c0:c1] = 255
    return m


def test_dsb_accepts_touching_and_warns_on_overlap(tmp_path):
    s = (16, 16)
    _dsb(tmp_path, "img1", s, [_blob(s, 0, 5, 0, 5), _blob(s, 0, 5, 5, 9)])
    _dsb(tmp_path, "img2", s, [_blob(s, 2, 8, 2, 8), _blob(s, 6, 10, 6, 10)])
    (tmp_path / "img1" / "masks" / ".DS_Store").write_text("x")  # hidden files are ignored
    plan = load_dsb_folders(tmp_path, name="mine", category="cell", pixel_size_um=0.2)
    assert [len(im.objects) for im in plan.images] == [2, 2]
    assert plan.name == "mine" and plan.categories == ["cell"] and plan.images[0].objects[0].category == "cell"
    assert plan.warnings == ["img2: 4 pixel(s) belong to more than one mask"]


def test_dsb_problems_are_all_reported(tmp_path):
    s = (16, 16)
    _dsb(tmp_path, "ok", s, [_blob(s, 1, 4, 1, 4)])
    _dsb(tmp_path, "empty", s, [np.zeros(s, np.uint8)])
    _dsb(tmp_path, "shape", s, [_blob((16, 17), 1, 4, 1, 4)])
    _dsb(tmp_path, "text", s, [])
    (tmp_path / "text" / "masks").mkdir()
    (tmp_path / "text" / "masks" / "readme.txt").write_text("hello")
    _dsb(tmp_path, "nomasks", s, [])
    write_png(tmp_path / "renamed" / "images" / "other.png", np.zeros(s, np.uint8))
    write_png(tmp_path / "renamed" / "masks" / "m.png", _blob(s, 1, 4, 1, 4))
    problems = _problems(lambda: load_dsb_folders(tmp_path))
    text = "\n".join(problems)
    assert len(problems) == 5
    assert "empty mask (no object pixel)" in text and "empty/masks/m0.png" in text
    assert "mask shape differs from image" in text and "shape/masks/m0.png is 17x16" in text
    assert "not an image file (mask)" in text and "readme.txt" in text
    assert "no mask files in" in text and "nomasks/masks" in text
    assert "missing image file" in text and "renamed/images/renamed.png" in text


def test_dsb_root_problems(tmp_path):
    assert "missing DSB root folder" in _problems(lambda: load_dsb_folders(tmp_path / "nope"))[0]
    assert "no DSB image folders" in _problems(lambda: load_dsb_folders(tmp_path))[0]


def test_dsb_size_limit(tmp_path):
    s = (16, 16)
    _dsb(tmp_path, "a", s, [_blob(s, 1, 4, 1, 4)])
    problems = _problems(lambda: load_dsb_folders(tmp_path, max_file_bytes=10))
    assert len(problems) == 2 and all("too large" in p for p in problems)
