"""How the polygon metrics agree with scikit-image ``regionprops`` on pixel masks, by object size.

The metrics keep the polygon model (``metrics.METRICS``): they are computed on the objects'
polygons, not on rasterised masks. ``regionprops`` measures the source masks' pixels, so the
two differ most on small objects, where a pixel is a large part of the shape: the polygon's
perimeter follows the pixel edges (regionprops' estimate runs through border pixel centres),
its convex hull is that of the outline (regionprops': of the pixel squares' corners, by
marching squares), its Feret diameter spans the outline.

``AGREEMENT`` holds, per metric and size band (the source mask's pixel count), the median
difference (ours minus regionprops') and the 90th percentile of its absolute value, measured
on the real data (1,122 nuclei of three public sets, imported by the hub's importers) by
``tests/archive/test_archive_agreement.py``, which asserts them; the archive README and the
project README show them (``agreement_table``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

# (label, smallest pixel count, largest pixel count) of each band
BANDS: tuple[tuple[str, float, float], ...] = (
    ("under 50 px", 0, 49),
    ("50-200 px", 50, 200),
    ("over 200 px", 201, math.inf),
)
# How a difference is shown: relative (%), absolute (a ratio's units) or in px (positions).
_FORMATS = {"relative": ("{:+.1f}%", "{:.1f}%", 100.0), "absolute": ("{:+.3f}", "{:.3f}", 1.0),
            "px": ("{:+.2f} px", "{:.2f} px", 1.0)}
UNIT = {"relative": 0.001, "absolute": 0.001, "px": 0.01}  # one step of what is shown


@dataclass(frozen=True)
class Agreement:
    """``metric`` (a ``metrics.METRICS`` key) against regionprops' ``regionprops`` value;
    ``kind``: how differences are measured (``relative``: (ours - theirs) / theirs,
    ``absolute``: ours - theirs, ``px``: ours - theirs in px); per band of ``BANDS``:
    ``median`` difference and ``p90`` (90th percentile of the absolute difference)."""

    metric: str
    regionprops: str
    kind: str
    median: tuple[float, float, float]
    p90: tuple[float, float, float]


AGREEMENT: tuple[Agreement, ...] = (
    Agreement("area", "area (pixel count)", "relative", (-0.010, -0.003, 0.003), (0.024, 0.011, 0.008)),
    Agreement("perimeter", "perimeter", "relative", (0.288, 0.152, 0.054), (0.441, 0.199, 0.069)),
    Agreement("equivalent_diameter", "equivalent_diameter_area", "relative", (-0.005, -0.002, 0.002),
              (0.012, 0.006, 0.004)),
    Agreement("circularity", "4 pi area / perimeter^2", "absolute", (-0.511, -0.237, -0.080), (0.802, 0.329, 0.108)),
    Agreement("feret_max", "feret_diameter_max", "relative", (0.044, 0.019, -0.003), (0.060, 0.034, 0.012)),
    Agreement("major_axis_length", "axis_major_length", "relative", (0.007, 0.001, 0.002), (0.017, 0.005, 0.005)),
    Agreement("minor_axis_length", "axis_minor_length", "relative", (0.017, 0.005, 0.003), (0.033, 0.011, 0.007)),
    Agreement("extent", "extent", "absolute", (-0.009, -0.002, 0.002), (0.020, 0.007, 0.005)),
    Agreement("solidity", "solidity", "absolute", (-0.055, -0.023, -0.001), (0.083, 0.037, 0.007)),
    Agreement("bbox_width", "bbox (columns)", "relative", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    Agreement("bbox_height", "bbox (rows)", "relative", (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)),
    Agreement("centroid_x", "centroid (column + 0.5)", "px", (0.0, 0.0, 0.0), (0.03, 0.03, 0.05)),
    Agreement("centroid_y", "centroid (row + 0.5)", "px", (0.0, 0.0, 0.0), (0.03, 0.03, 0.04)),
)
NOT_IN_REGIONPROPS = ("feret_min", "feret_orthogonal", "feret_aspect_ratio", "convexity")


def _cell(row: Agreement, band: int) -> str:
    signed, unsigned, scale = _FORMATS[row.kind]
    median = row.median[band] * scale
    return f"{signed.format(median + 0.0)} (90%: {unsigned.format(row.p90[band] * scale)})"


def agreement_table() -> list[str]:
    """The Markdown lines of the agreement table (with its header line and a note)."""
    lines = [
        "| metric | regionprops | " + " | ".join(label for label, _, _ in BANDS) + " |",
        "| --- | --- | " + " | ".join("---" for _ in BANDS) + " |",
    ]
    for row in AGREEMENT:
        cells = " | ".join(_cell(row, k) for k in range(len(BANDS)))
        lines.append(f"| `{row.metric}` | `{row.regionprops}` | {cells} |")
    lines.append("")
    lines.append("Each cell: the median difference (polygon metric minus regionprops on the source mask; "
                 "relative for lengths and areas) and, in brackets, the difference that 90% of objects stay "
                 "within. No regionprops counterpart: " + ", ".join(f"`{m}`" for m in NOT_IN_REGIONPROPS) + ".")
    return lines
