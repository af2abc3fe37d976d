"""The polygon metrics against scikit-image ``regionprops`` on the SOURCE masks, by object size
(issue 19, part 4): the numbers ``server.archive.agreement.AGREEMENT`` states (and the READMEs
show) are the ones measured on the 1,122 real nuclei imported by the hub's importers."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from skimage.measure import regionprops

from archive_helpers import REAL_SETS
from server.archive.agreement import AGREEMENT, BANDS, UNIT, agreement_table
from server.archive.geometry import to_shapely
from server.archive.metrics import METRICS, geometry_metrics

REPO = Path(__file__).resolve().parents[2]


def _theirs(rp) -> dict[str, float]:
    return {
        "area": rp.area, "perimeter": rp.perimeter, "equivalent_diameter": rp.equivalent_diameter_area,
        "circularity": 4 * math.pi * rp.area / rp.perimeter ** 2 if rp.perimeter else math.nan,
        "feret_max": rp.feret_diameter_max, "major_axis_length": rp.axis_major_length,
        "minor_axis_length": rp.axis_minor_length, "extent": rp.extent, "solidity": rp.solidity,
        "bbox_width": rp.bbox[3] - rp.bbox[1], "bbox_height": rp.bbox[2] - rp.bbox[0],
        # regionprops puts pixel centres at integers, COCO (and the polygons) at +0.5.
        "centroid_x": rp.centroid[1] + 0.5, "centroid_y": rp.centroid[0] + 0.5,
    }


@pytest.fixture(scope="module")
def differences(cells_dir) -> dict[tuple[str, int], list[float]]:
    kinds = {row.metric: row.kind for row in AGREEMENT}
    out: dict[tuple[str, int], list[float]] = {}
    count = 0
    for load in REAL_SETS.values():
        plan, source_mask = load(cells_dir)
        for image in plan.images:
            for obj in image.objects:
                mask = source_mask(image, obj.source)
                rp = regionprops(mask.astype(np.uint8))[0]
                band = next(k for k, (_, lo, hi) in enumerate(BANDS) if lo <= rp.area <= hi)
                ours = geometry_metrics(to_shapely(obj.polygons))
                for metric, theirs in _theirs(rp).items():
                    diff = ours[metric] - theirs
                    if kinds[metric] == "relative":
                        diff /= theirs
                    out.setdefault((metric, band), []).append(diff)
                count += 1
    assert count == 1122
    return out


def test_every_band_holds_objects(differences):
    sizes = [len(differences[("area", band)]) for band in range(len(BANDS))]
    assert all(n >= 50 for n in sizes), sizes  # enough objects under 50 px, 50-200 px, over 200 px


@pytest.mark.parametrize("row", AGREEMENT, ids=lambda row: row.metric)
def test_the_stated_agreement_is_the_measured_one(differences, row):
    for band, (label, _, _) in enumerate(BANDS):
        diffs = np.asarray(differences[(row.metric, band)])
        median = float(np.median(diffs))
        p90 = float(np.percentile(np.abs(diffs), 90))
        unit = UNIT[row.kind]
        # What the table shows, to its last digit: the median, and a 90 % bound that holds.
        assert abs(median - row.median[band]) <= unit, (label, median, row.median[band])
        assert p90 <= row.p90[band] + unit / 2, (label, p90, row.p90[band])
        assert p90 >= row.p90[band] - unit, (label, p90, row.p90[band])  # not a loose bound either


def test_every_metric_is_compared_or_said_not_to_have_a_counterpart():
    from server.archive.agreement import NOT_IN_REGIONPROPS

    assert {row.metric for row in AGREEMENT} | set(NOT_IN_REGIONPROPS) == {m.key for m in METRICS}


def test_the_project_readme_shows_the_table():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "\n".join(agreement_table()) in readme
