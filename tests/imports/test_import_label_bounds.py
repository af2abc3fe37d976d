"""Label images and masks over the bounds of ``server.imports.bounds`` (issue 16, item 2):
too many distinct labels, or objects scattered so that tracing each within its box would
cost many times the image, are refused before any object is traced."""
from __future__ import annotations

import numpy as np
import pytest

from import_helpers import write_png, write_tiff
from server.imports import ImportValidationError, load_label_images, load_patch_labels
from server.imports.bounds import MAX_BOX_COVER, MAX_LABELS_PER_IMAGE


def _pair(tmp_path, labels: np.ndarray, colour: bool = False):
    image = write_png(tmp_path / "a.png", np.zeros(labels.shape[:2], np.uint8))
    mask = write_png(tmp_path / "a_mask.png", labels) if colour else write_tiff(tmp_path / "a_lab.tif", labels)
    return [(image, mask)]


def test_more_distinct_labels_than_the_limit_are_refused(tmp_path):
    labels = np.arange(1, 300 * 200 + 1, dtype=np.uint32).reshape(200, 300)  # 60,000 labels
    with pytest.raises(ImportValidationError, match=f"60,000 distinct labels, more than the limit of "
                                                    f"{MAX_LABELS_PER_IMAGE:,}"):
        load_label_images(_pair(tmp_path, labels))
    with pytest.raises(ImportValidationError, match="60,000 distinct labels"):
        load_label_images(_pair(tmp_path, labels * 100_003))  # large values: numbered first


def test_labels_scattered_over_the_image_are_refused_before_tracing(tmp_path):
    labels = np.zeros((200, 300), np.uint16)
    for k in range(1, 2 * MAX_BOX_COVER + 1):  # each label in two opposite corners: its box is ~the image
        labels[0, k], labels[199, 299 - k] = k, k
    with pytest.raises(ImportValidationError, match=f"times the image, more than the limit of {MAX_BOX_COVER}"):
        load_label_images(_pair(tmp_path, labels))


def test_a_colour_mask_of_more_patches_than_the_limit_is_refused(tmp_path):
    rng = np.random.default_rng(2)
    rgb = rng.integers(0, 256, (240, 240, 3), dtype=np.uint8)  # nearly every pixel its own patch
    with pytest.raises(ImportValidationError, match="distinct labels, more than the limit"):
        load_patch_labels(_pair(tmp_path, rgb, colour=True))
