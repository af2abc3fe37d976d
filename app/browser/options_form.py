"""The export options form as data, validated by the very model the server uses.

Pure (no ``js``): the page keeps the form's raw values in a ``FormValues`` (strings as the
user typed them, booleans for check boxes) and ``validate`` turns them and the image
selection into an ``app.models.ExportOptions``, or into one readable message per field.
Ranges and defaults are read from the model's fields, never repeated here, so the page
and the server cannot disagree about them.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, Iterable, Optional

from pydantic import ValidationError

from app.models import ExportOptions, VisualizationOptions

ANNOTATION_FORMATS: tuple[tuple[str, str, str], ...] = (
    ("coco", "COCO",
     "annotations/coco/annotations.json: polygons with holes for pycocotools, Detectron2, MMDetection."),
    ("yolo", "YOLO",
     "yolo/: data.yaml, labels/ and images/ as Ultralytics loads them, no edits needed."),
    ("json", "Project JSON",
     "annotations/json/project.json: every polygon, hole and class, lossless, for your own scripts."),
)
"""(value, label, one-line description) of each annotation format."""

METRICS_FORMATS: tuple[tuple[str, str, str], ...] = (
    ("csv", "CSV", "metrics/metrics.csv: one row per object (area, perimeter, circularity, Feret…)."),
    ("xlsx", "Excel", "metrics/metrics.xlsx: the same table as a workbook, ready to sort and chart."),
    ("json", "JSON", "metrics/metrics.json: the same values with units and definitions, for scripts."),
)
"""(value, label, one-line description) of each metrics format."""

FIELD_LABELS: dict[str, str] = {
    "pixel_size_um": "Pixel size",
    "visualization.stroke_width": "Stroke width",
    "visualization.font_size": "Font size",
    "visualization.opacity": "Opacity",
    "visualization.outline_color": "Outline colour",
    "visualization.hole_color": "Hole colour",
    "image_ids": "Images",
    "annotation_formats": "Annotation formats",
    "metrics_formats": "Metrics formats",
}
FIELD_UNITS: dict[str, str] = {
    "pixel_size_um": " µm/px",
    "visualization.stroke_width": " px",
    "visualization.font_size": " px",
}
NOTHING_TO_EXPORT = "Choose at least one thing to export: a format, the images or the overlays."
"""The page's wording of ``ExportOptions``' rule that an archive must hold something."""

_RANGE_ERRORS = frozenset({"greater_than_equal", "less_than_equal", "greater_than", "less_than"})
_NUMBER_ERRORS = frozenset({"float_parsing", "float_type", "finite_number"})
_WHOLE_NUMBER_ERRORS = frozenset({"int_parsing", "int_type", "int_from_float"})

_VIS_DEFAULTS = VisualizationOptions()


def _number_text(value: float) -> str:
    return f"{value:g}"


@dataclass(frozen=True)
class FormValues:
    """Raw values of the form: numbers as typed (``pixel_size`` may use a decimal comma and
    may be empty = pixel units), colours as ``#rrggbb``. Defaults are the model's."""

    annotation_formats: tuple[str, ...] = ("coco",)
    metrics_formats: tuple[str, ...] = ()
    include_images: bool = False
    include_visualizations: bool = False
    outline_color: str = _VIS_DEFAULTS.outline_color
    hole_color: str = _VIS_DEFAULTS.hole_color
    stroke_width: str = str(_VIS_DEFAULTS.stroke_width)
    font_size: str = str(_VIS_DEFAULTS.font_size)
    opacity: str = _number_text(_VIS_DEFAULTS.opacity)
    show_numbers: bool = _VIS_DEFAULTS.show_numbers
    pixel_size: str = ""

    def with_format(self, group: str, value: str, on: bool) -> "FormValues":
        """A copy with ``value`` added to / removed from ``group`` (``annotation_formats`` or
        ``metrics_formats``), keeping the order of the format tables. ``ValueError`` for
        another group."""
        if group not in ("annotation_formats", "metrics_formats"):
            raise ValueError(f"unknown format group {group!r}")
        table = ANNOTATION_FORMATS if group == "annotation_formats" else METRICS_FORMATS
        current = set(getattr(self, group))
        current = current | {value} if on else current - {value}
        ordered = tuple(v for v, _, _ in table if v in current)
        return _replace(self, **{group: ordered})

    def with_value(self, name: str, value: Any) -> "FormValues":
        """A copy with field ``name`` set (``AttributeError`` for an unknown name)."""
        if name not in FormValues.__dataclass_fields__:
            raise AttributeError(name)
        return _replace(self, **{name: value})


def _replace(values: FormValues, **changes: Any) -> FormValues:
    data = asdict(values)
    data.update(changes)
    data["annotation_formats"] = tuple(data["annotation_formats"])
    data["metrics_formats"] = tuple(data["metrics_formats"])
    return FormValues(**data)


@dataclass(frozen=True)
class Validation:
    """``options`` when the form is valid, else None; ``errors`` maps a field path
    (``pixel_size_um``, ``visualization.stroke_width``, ``image_ids``, ``formats`` …) to one
    message for the person; ``first`` is the first of them (for a summary line)."""

    options: Optional[ExportOptions]
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def first(self) -> Optional[str]:
        return next(iter(self.errors.values()), None)

    @property
    def ok(self) -> bool:
        return self.options is not None and not self.errors


def field_bounds(path: str) -> tuple[Optional[float], Optional[float]]:
    """``(lowest, highest)`` allowed by the model for ``path`` (``pixel_size_um`` or
    ``visualization.<name>``), from the field's ``ge``/``le`` constraints; None where the
    model sets no bound. ``KeyError`` for an unknown field."""
    if path.startswith("visualization."):
        info = VisualizationOptions.model_fields[path.split(".", 1)[1]]
    else:
        info = ExportOptions.model_fields[path]
    low = high = None
    for meta in info.metadata:
        low = getattr(meta, "ge", getattr(meta, "gt", low))
        high = getattr(meta, "le", getattr(meta, "lt", high))
    return low, high


def range_text(path: str) -> str:
    """``"0.001–1000 µm/px"``: the allowed range of a numeric field with its unit."""
    low, high = field_bounds(path)
    unit = FIELD_UNITS.get(path, "")
    return f"{_number_text(low)}–{_number_text(high)}{unit}" if low is not None and high is not None else ""


def friendly_message(path: str, error: dict) -> str:
    """One sentence for a pydantic error ``error`` (an item of ``ValidationError.errors()``)
    on field ``path``: ranges name both bounds and the unit; other errors keep the
    model's own reason."""
    label = FIELD_LABELS.get(path, path)
    kind = error.get("type", "")
    if kind in _RANGE_ERRORS:
        low, high = field_bounds(path)
        return f"{label} must be between {_number_text(low)} and {_number_text(high)}{FIELD_UNITS.get(path, '')}."
    if kind in _NUMBER_ERRORS:
        return f"{label} must be a number."
    if kind in _WHOLE_NUMBER_ERRORS:
        return f"{label} must be a whole number."
    if kind == "string_pattern_mismatch":
        return f"{label} must be a colour like #00ff00."
    if path == "image_ids":
        return "Select at least one image to export."
    reason = str(error.get("msg", "is invalid"))
    reason = reason.removeprefix("Value error, ")
    return f"{label}: {reason}"


def _blank_to_none(text: str) -> Optional[str]:
    cleaned = text.strip().replace(",", ".")
    return cleaned or None


def image_ids_for(selected: Iterable[int], all_ids: Iterable[int]) -> Optional[list[int]]:
    """The ``image_ids`` option: None when every image is selected (the model's "all"),
    else the selected ids in ascending order (possibly empty, which the model refuses)."""
    chosen = set(selected)
    every = set(all_ids)
    if every and every <= chosen:
        return None
    return sorted(chosen & every) if every else sorted(chosen)


def raw_options(values: FormValues, selected: Iterable[int], all_ids: Iterable[int]) -> dict:
    """The JSON-shaped dict handed to ``ExportOptions.model_validate`` (strings are left
    for pydantic to parse, so its messages name the real problem)."""
    return {
        "annotation_formats": list(values.annotation_formats),
        "metrics_formats": list(values.metrics_formats),
        "image_ids": image_ids_for(selected, all_ids),
        "include_images": values.include_images,
        "include_visualizations": values.include_visualizations,
        "visualization": {
            "outline_color": values.outline_color,
            "hole_color": values.hole_color,
            "stroke_width": values.stroke_width.strip(),
            "font_size": values.font_size.strip(),
            "opacity": values.opacity.strip().replace(",", "."),
            "show_numbers": values.show_numbers,
        },
        "pixel_size_um": _blank_to_none(values.pixel_size),
    }


def validate(values: FormValues, selected: Iterable[int], all_ids: Iterable[int]) -> Validation:
    """Validate the form and the image selection with ``ExportOptions``.

    Overlay style errors count only when overlays are included (the server would still
    refuse them, so the style then falls back to the defaults). Never raises."""
    data = raw_options(values, selected, all_ids)
    if not values.include_visualizations:
        data["visualization"] = {}
    errors: dict[str, str] = {}
    options: Optional[ExportOptions] = None
    try:
        options = ExportOptions.model_validate(data)
    except ValidationError as exc:
        for err in exc.errors():
            path = ".".join(str(p) for p in err.get("loc", ()) if not isinstance(p, int))
            if not path:
                # The model's only cross-field rule: an archive with nothing in it.
                errors = {"formats": NOTHING_TO_EXPORT, **errors}
                continue
            errors.setdefault(path, friendly_message(path, err))
    if errors:
        return Validation(None, errors)
    if options is not None and not values.include_visualizations:
        # Keep the style the person set up for the next time they switch overlays on.
        try:
            options = options.model_copy(update={"visualization": VisualizationOptions.model_validate(
                raw_options(values, selected, all_ids)["visualization"])})
        except ValidationError:
            pass
    return Validation(options, {})


def form_from_options(options: ExportOptions) -> FormValues:
    """The form showing ``options`` (used for saved preferences and Retry)."""
    vis = options.visualization
    return FormValues(
        annotation_formats=tuple(v for v, _, _ in ANNOTATION_FORMATS if v in options.annotation_formats),
        metrics_formats=tuple(v for v, _, _ in METRICS_FORMATS if v in options.metrics_formats),
        include_images=options.include_images,
        include_visualizations=options.include_visualizations,
        outline_color=vis.outline_color,
        hole_color=vis.hole_color,
        stroke_width=str(vis.stroke_width),
        font_size=str(vis.font_size),
        opacity=_number_text(vis.opacity),
        show_numbers=vis.show_numbers,
        pixel_size="" if options.pixel_size_um is None else _number_text(options.pixel_size_um),
    )


PREFERENCES_VERSION = 1


def encode_preferences(options: ExportOptions) -> str:
    """The remembered options as JSON text (the image selection is not remembered: it
    belongs to one project)."""
    data = options.model_dump(mode="json", exclude={"image_ids"})
    return json.dumps({"v": PREFERENCES_VERSION, "options": data})


def decode_preferences(text: Optional[str]) -> Optional[FormValues]:
    """The form from ``encode_preferences`` text; None for missing, corrupt, other-version
    or no longer valid data (then the page shows the defaults)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        if not isinstance(data, dict) or data.get("v") != PREFERENCES_VERSION:
            return None
        return form_from_options(ExportOptions.model_validate(data.get("options")))
    except (ValueError, TypeError, ValidationError):
        return None


def initial_form(project_pixel_size: Optional[float], saved: Optional[str]) -> FormValues:
    """The form a page opens with: the remembered options (``saved``, from
    ``encode_preferences``; defaults if unusable) with the pixel size of *this* project's
    metadata, else empty (pixel units). A pixel size belongs to a microscope, so it never
    carries over from another project."""
    form = decode_preferences(saved) or FormValues()
    size = project_pixel_size
    usable = isinstance(size, (int, float)) and not isinstance(size, bool) and size > 0
    return form.with_value("pixel_size", _number_text(float(size)) if usable else "")


def describe_options(options: ExportOptions, image_count: Optional[int] = None) -> str:
    """A short line for the history: ``"COCO, YOLO · metrics CSV · images · overlays ·
    3 images · 0.5 µm/px"``. ``image_count``: the project's image count, to say "all"."""
    labels = dict((v, l) for v, l, _ in ANNOTATION_FORMATS)
    mlabels = dict((v, l) for v, l, _ in METRICS_FORMATS)
    parts = []
    if options.annotation_formats:
        parts.append(", ".join(labels.get(f, f) for f in options.annotation_formats))
    if options.metrics_formats:
        parts.append("metrics " + ", ".join(mlabels.get(f, f) for f in options.metrics_formats))
    if options.include_images:
        parts.append("images")
    if options.include_visualizations:
        parts.append("overlays")
    if options.image_ids is None:
        parts.append("all images" if image_count is None else f"all {image_count} images")
    else:
        n = len(options.image_ids)
        parts.append(f"{n} image" + ("" if n == 1 else "s"))
    if options.pixel_size_um is not None:
        parts.append(f"{_number_text(options.pixel_size_um)} µm/px")
    return " · ".join(parts)
