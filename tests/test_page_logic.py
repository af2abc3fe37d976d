"""The page's pure parts in CPython: form validation with the shared model, wording,
time-left estimate, the page state, work deferred to a later task and the precompiled
bytecode bundle (``app.browser.options_form``, ``texts``, ``page_state``, ``later``,
``bytecode``; none of them imports ``js``)."""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import inspect
import json
import marshal
import sys
import uuid
from dataclasses import FrozenInstanceError

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.browser.options_form import (
    NOTHING_TO_EXPORT, FormValues, decode_preferences, describe_options, encode_preferences,
    field_bounds, form_from_options, image_ids_for, initial_form, range_text, validate,
)
from app.browser.bytecode import (
    HEADER, BundleError, GeneratedCode, build_bundle, install, load_bundle, uninstall,
)
from app.browser.later import Later, LaterEffect
from app.browser.page_state import PageState
from app.browser.texts import (
    EtaEstimator, format_bytes, format_duration, parse_iso_ms, relative_time, stage_text, status_line,
    time_left_text,
)
from app.models import ExportOptions, VisualizationOptions
from app.store import effect, set_error_handler, signal

IDS = [1, 2, 3]
PIXEL_MESSAGE = "Pixel size must be between 0.001 and 1000 µm/px."


def check(values: FormValues, selected=IDS):
    return validate(values, selected, IDS)


@pytest.mark.parametrize("text", ["0", "5000", "-1", "0.0009", "1000.5"])
def test_pixel_size_out_of_range_names_both_bounds_and_the_unit(text):
    result = check(FormValues(pixel_size=text))
    assert result.options is None
    assert result.errors == {"pixel_size_um": PIXEL_MESSAGE}


@pytest.mark.parametrize("text, expected", [("", None), ("  ", None), ("0.65", 0.65), ("0,65", 0.65),
                                            ("1000", 1000.0), ("0.001", 0.001)])
def test_pixel_size_in_range_blank_or_with_a_decimal_comma_is_accepted(text, expected):
    result = check(FormValues(pixel_size=text))
    assert result.ok and result.options.pixel_size_um == expected


def test_pixel_size_that_is_not_a_number_says_so():
    assert check(FormValues(pixel_size="abc")).errors == {"pixel_size_um": "Pixel size must be a number."}


def test_the_bounds_come_from_the_model_itself():
    assert field_bounds("pixel_size_um") == (0.001, 1000)
    assert field_bounds("visualization.stroke_width") == (1, 20)
    assert field_bounds("visualization.font_size") == (6, 72)
    assert field_bounds("visualization.opacity") == (0.0, 1.0)
    assert range_text("pixel_size_um") == "0.001–1000 µm/px"


def test_every_page_verdict_matches_the_server_model():
    """What the page accepts, ``ExportOptions`` accepts, and the page sends exactly it."""
    for values in [FormValues(), FormValues(annotation_formats=("yolo",), metrics_formats=("csv", "xlsx")),
                   FormValues(include_visualizations=True, stroke_width="4", opacity="0.5", pixel_size="2")]:
        result = check(values, [2])
        assert result.ok
        assert ExportOptions.model_validate(result.options.model_dump(mode="json")) == result.options
        assert result.options.image_ids == [2]


def test_selection_all_means_null_a_subset_is_listed_and_none_is_refused():
    assert image_ids_for([3, 1, 2], IDS) is None
    assert image_ids_for([3, 1], IDS) == [1, 3]
    result = check(FormValues(), [])
    assert result.options is None and result.errors == {"image_ids": "Select at least one image to export."}


def test_nothing_to_export_is_refused_before_the_server_sees_it():
    result = check(FormValues(annotation_formats=()))
    assert result.errors == {"formats": NOTHING_TO_EXPORT}
    assert check(FormValues(annotation_formats=(), include_images=True)).ok


def test_overlay_style_errors_count_only_with_overlays_on():
    bad = FormValues(stroke_width="50", font_size="2", include_visualizations=True)
    assert check(bad).errors == {
        "visualization.stroke_width": "Stroke width must be between 1 and 20 px.",
        "visualization.font_size": "Font size must be between 6 and 72 px.",
    }
    off = check(FormValues(stroke_width="50", include_visualizations=False))
    assert off.ok and off.options.visualization == VisualizationOptions()
    kept = check(FormValues(stroke_width="7", include_visualizations=False))
    assert kept.options.visualization.stroke_width == 7  # remembered for when overlays go on
    assert check(FormValues(stroke_width="2.5", include_visualizations=True)).errors == {
        "visualization.stroke_width": "Stroke width must be a whole number."}
    assert check(FormValues(opacity="x", include_visualizations=True)).errors == {
        "visualization.opacity": "Opacity must be a number."}


def test_format_edits_keep_the_table_order_and_refuse_unknown_groups():
    values = FormValues(annotation_formats=()).with_format("annotation_formats", "json", True)
    values = values.with_format("annotation_formats", "coco", True).with_format("metrics_formats", "csv", True)
    assert values.annotation_formats == ("coco", "json") and values.metrics_formats == ("csv",)
    assert values.with_format("annotation_formats", "coco", False).annotation_formats == ("json",)
    with pytest.raises(ValueError):
        values.with_format("images", "png", True)
    with pytest.raises(AttributeError):
        values.with_value("colour", "#000000")


# model_construct: the form must also cope with options the model refuses (nothing to export).
options_strategy = st.builds(
    ExportOptions.model_construct,
    annotation_formats=st.lists(st.sampled_from(["coco", "yolo", "json"]), unique=True),
    metrics_formats=st.lists(st.sampled_from(["csv", "xlsx", "json"]), unique=True),
    include_images=st.booleans(),
    include_visualizations=st.booleans(),
    visualization=st.builds(
        VisualizationOptions,
        stroke_width=st.integers(1, 20), font_size=st.integers(6, 72),
        opacity=st.floats(0, 1).map(lambda x: round(x, 2)), show_numbers=st.booleans(),
        outline_color=st.from_regex(r"#[0-9a-f]{6}", fullmatch=True),
        hole_color=st.from_regex(r"#[0-9a-f]{6}", fullmatch=True)),
    pixel_size_um=st.none() | st.floats(0.001, 1000).map(lambda x: float(f"{x:.6g}")),
)


def _in_table_order(options: ExportOptions) -> ExportOptions:
    return options.model_copy(update={
        "annotation_formats": [f for f in ("coco", "yolo", "json") if f in options.annotation_formats],
        "metrics_formats": [f for f in ("csv", "xlsx", "json") if f in options.metrics_formats]})


@given(options_strategy)
def test_options_survive_the_form_and_the_saved_preferences(options):
    has_output = options.annotation_formats or options.metrics_formats or options.include_images \
        or options.include_visualizations
    result = validate(form_from_options(options), IDS, IDS)
    if has_output:
        assert result.options == _in_table_order(options)
    else:
        assert result.errors == {"formats": NOTHING_TO_EXPORT}
    decoded = decode_preferences(encode_preferences(options))
    # Saved options that are no longer valid come back as None: the page shows the defaults.
    assert decoded == (form_from_options(options) if has_output else None)


@pytest.mark.parametrize("text", [None, "", "{", "[]", json.dumps({"v": 99, "options": {}}),
                                  json.dumps({"v": 1, "options": {"pixel_size_um": 0}}),
                                  json.dumps({"v": 1, "options": {"bogus": 1}})])
def test_bad_saved_preferences_give_the_defaults(text):
    assert decode_preferences(text) is None


def test_the_pixel_size_comes_from_the_project_never_from_another_one():
    saved = encode_preferences(ExportOptions(annotation_formats=["yolo"], pixel_size_um=2.0))
    assert initial_form(0.65, saved) == FormValues(annotation_formats=("yolo",), pixel_size="0.65")
    assert initial_form(None, saved).pixel_size == ""
    assert initial_form(None, None) == FormValues()


def test_history_line_says_what_the_archive_holds():
    options = ExportOptions(annotation_formats=["yolo"], metrics_formats=["csv", "json"], image_ids=[1, 2],
                            include_visualizations=True, pixel_size_um=0.5)
    assert describe_options(options, 12) == "YOLO · metrics CSV, JSON · overlays · 2 images · 0.5 µm/px"
    assert describe_options(ExportOptions(), 12) == "COCO · all 12 images"


def test_every_machine_state_has_its_status_line():
    from app.browser.texts import STATUS_TEXT
    from app.machine import STATES

    assert set(STATUS_TEXT) == {str(state) for state in STATES}
    assert status_line("undelivered", None, None) == "The download did not complete."
    assert status_line("delivering", None, "another tab is downloading this export") == \
        "Downloading… another tab is downloading this export"


def test_status_line_names_the_failure_and_the_notice_but_not_progress_chatter():
    assert status_line("running", None, None, "Metrics: image 3 of 12") == "Exporting…"
    assert status_line("cancelling", None, None) == "Cancelling…"
    assert status_line("downloaded", None, None) == "Downloaded."
    assert status_line("failed", "disk full", None) == "Export failed: disk full"
    assert status_line("failed", None, None, "Archive expired") == "Export failed: Archive expired"
    assert status_line("downloaded", None, "downloaded in another tab") == "Downloaded. downloaded in another tab"
    assert stage_text("metrics") == "Measuring objects" and stage_text("new_stage") == "New stage"


@pytest.mark.parametrize("size, text", [(None, ""), (999, "999 B"), (1000, "1.0 kB"), (2_712_345, "2.7 MB"),
                                        (123_456_789, "123 MB"), (5 * 10**12, "5.0 TB")])
def test_sizes(size, text):
    assert format_bytes(size) == text


@pytest.mark.parametrize("ms, text", [(None, ""), (-5, "0 s"), (12_900, "12 s"), (65_000, "1 min 05 s"),
                                      (3_720_000, "1 h 02 min")])
def test_durations(ms, text):
    assert format_duration(ms) == text


def test_times():
    assert parse_iso_ms("1970-01-01T00:00:01.500+00:00") == 1500.0
    assert parse_iso_ms("1970-01-01T00:00:02Z") == 2000.0
    assert parse_iso_ms("1970-01-01T00:00:03") == 3000.0
    assert parse_iso_ms("yesterday") is None and parse_iso_ms("") is None
    assert relative_time(0, 10_000) == "just now"
    assert relative_time(0, 5 * 60_000) == "5 min ago"
    assert relative_time(0, 86_400_000 * 2) == "2 days ago"


def test_time_left_is_extrapolated_from_the_progress_seen_and_unknown_at_first():
    eta = EtaEstimator()
    assert eta.remaining_ms(0) is None
    eta.observe(0, 10)
    eta.observe(1000, 15)
    assert eta.remaining_ms(1000) is None  # under 1.5 s of samples: a guess would be noise
    eta.observe(2000, 20)  # 10 points in 2 s -> 80 points need 16 s
    assert eta.remaining_ms(2000) == pytest.approx(16_000)
    assert eta.remaining_ms(6000) == pytest.approx(12_000)
    assert time_left_text(eta.remaining_ms(6000)) == "About 12 s left"
    eta.observe(3000, 5)  # progress went back: another job; start over
    assert eta.remaining_ms(3000) is None
    assert time_left_text(1000, 90) == "Almost done" and time_left_text(None) == ""
    assert time_left_text(1000, 40) == "A few seconds left"


def test_page_state_counts_images_and_objects_and_recomputes_validation():
    project = {"id": 7, "images": [{"id": 1, "object_count": 5}, {"id": 2, "object_count": 7},
                                   {"id": 3, "object_count": 1}]}
    state = PageState(project)
    seen = []
    dispose = effect(lambda: seen.append(state.selection_text()))
    assert seen[-1] == "3 of 3 images selected · 13 objects"
    state.select(2, False)
    assert seen[-1] == "2 of 3 images selected · 6 objects"
    assert state.validation.value.options.image_ids == [1, 3]
    state.select(99, True)  # not an image of this project
    assert state.selection.value == (2, 6)
    state.select_none()
    assert seen[-1] == "0 of 3 images selected · 0 objects" and not state.validation.value.ok
    state.select_all()
    state.update_form(lambda f: f.with_value("pixel_size", "0"))
    assert state.validation.value.errors == {"pixel_size_um": PIXEL_MESSAGE}
    dispose()
    state.dispose()


# --- later work (app.browser.later) -------------------------------------------------------

class FakeTimer:
    """Collects what ``Later`` asks to run in a later task; ``fire()`` runs that task."""

    def __init__(self) -> None:
        self.armed: list = []

    def __call__(self, run) -> None:
        self.armed.append(run)

    def fire(self) -> None:
        runs, self.armed = self.armed, []
        for run in runs:
            run()


def test_later_runs_queued_work_once_in_order_in_one_task_and_survives_a_failing_item():
    timer = FakeTimer()
    later = Later(timer)
    done, errors = [], []
    previous = set_error_handler(lambda exc, where: errors.append(str(exc)))
    try:
        later.call_soon(1, lambda: done.append("a"))
        later.call_soon(2, lambda: (_ for _ in ()).throw(RuntimeError("boom")))
        later.call_soon(3, lambda: done.append("c"))
        later.call_soon(1, lambda: done.append("a again"))  # already queued: keeps its turn, runs once
        later.cancel(99)
        assert len(timer.armed) == 1 and done == []  # one task for everything queued meanwhile
        timer.fire()
    finally:
        set_error_handler(previous)
    assert done == ["a", "c"] and errors == ["boom"] and later.pending == 0
    later.call_soon(4, lambda: done.append("d"))
    later.cancel(4)
    timer.fire()
    assert done == ["a", "c"]


def test_a_later_effect_renders_at_once_then_once_per_task_whatever_changed_meanwhile():
    timer = FakeTimer()
    status, progress, detail = signal("running"), signal(10), signal("x")
    seen = []

    def render():
        seen.append((status.value, progress.value) + ((detail.value,) if status.value == "failed" else ()))

    runner = LaterEffect(render, Later(timer)).start()
    assert seen == [("running", 10)]
    progress.value = 20
    progress.value = 30
    status.value = "failed"
    assert seen == [("running", 10)]  # nothing rendered inside the writes' own task
    timer.fire()
    assert seen == [("running", 10), ("failed", 30, "x")]
    detail.value = "y"  # read only by the last run: it is a dependency now
    timer.fire()
    assert seen[-1] == ("failed", 30, "y") and runner.runs == 3
    progress.value = 40
    runner.dispose()  # a queued run is dropped, and nothing is tracked any more
    timer.fire()
    status.value = "idle"
    timer.fire()
    assert runner.runs == 3 and timer.armed == []


# --- precompiled bytecode (app.browser.bytecode) -----------------------------------------

@pytest.fixture
def fresh_package(tmp_path, monkeypatch):
    """A package of two modules (one defines a dataclass) that nothing imported yet, on
    sys.path; yields its name and folder, and forgets its modules afterwards."""
    name = f"bcpkg_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / name
    folder.mkdir()
    (folder / "__init__.py").write_text("from . import shapes\nVALUE = 41 + 1\n")
    (folder / "shapes.py").write_text(
        "from dataclasses import dataclass\n\n\n"
        "@dataclass(frozen=True)\nclass Point:\n    x: int\n    y: int = 0\n\n\n"
        "def where():\n    return __file__\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    yield name, folder
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def _forget(name: str) -> None:
    for module in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[module]


def test_a_bundle_holds_the_imported_modules_and_the_code_dataclasses_generate(fresh_package):
    name, folder = fresh_package
    data = build_bundle([name])
    modules, generated = load_bundle(data)
    assert set(modules) == {name, f"{name}.shapes"}
    origin, size, _ = modules[f"{name}.shapes"]
    assert origin == str(folder / "shapes.py") and size == (folder / "shapes.py").stat().st_size
    assert any("__init__" in text for text in generated)  # Point's generated methods


def test_modules_from_a_bundle_run_its_code_with_their_own_file_source_and_dataclasses(fresh_package):
    name, folder = fresh_package
    data = build_bundle([name])
    _forget(name)
    finder = install(data)
    try:
        package = importlib.import_module(name)
        shapes = importlib.import_module(f"{name}.shapes")
    finally:
        uninstall(finder)
    assert set(finder.hits) == {name, f"{name}.shapes"} and finder.misses == []
    assert package.VALUE == 42 and shapes.where() == str(folder / "shapes.py")
    assert inspect.getsource(shapes.where).startswith("def where")  # the real loader still answers
    assert finder.generated.hits >= 1  # Point's methods came compiled from the bundle
    point = shapes.Point(1, 2)
    assert point == shapes.Point(1, 2) and repr(point) == "Point(x=1, y=2)" and hash(point) == hash((1, 2))
    with pytest.raises(FrozenInstanceError):
        point.x = 3
    assert finder not in sys.meta_path and "exec" not in dataclasses.__dict__


def test_a_module_whose_source_changed_since_the_bundle_is_compiled_from_its_source(fresh_package):
    name, folder = fresh_package
    data = build_bundle([name])
    _forget(name)
    (folder / "__init__.py").write_text("from . import shapes\nVALUE = 'edited after the bundle was built'\n")
    finder = install(data)
    try:
        package = importlib.import_module(name)
    finally:
        uninstall(finder)
    assert package.VALUE == "edited after the bundle was built"
    assert finder.misses == [name] and finder.hits == [f"{name}.shapes"]


def test_a_bundle_of_another_format_or_python_version_is_refused_and_nothing_is_installed():
    before = list(sys.meta_path)
    with pytest.raises(BundleError, match="not a bytecode bundle"):
        install(b"PK\x03\x04 a zip, say")
    other_magic = bytes([importlib.util.MAGIC_NUMBER[0] ^ 0xFF]) + importlib.util.MAGIC_NUMBER[1:]
    with pytest.raises(BundleError, match="another Python version"):
        install(HEADER + other_magic + marshal.dumps({"modules": {}, "generated": {}}))
    assert sys.meta_path == before and "exec" not in dataclasses.__dict__


def test_generated_code_runs_known_texts_precompiled_and_compiles_the_others():
    text = "def make():\n    return 'from text'\n"
    known = GeneratedCode({text: marshal.dumps(compile("def make():\n    return 'precompiled'\n",
                                                       "<string>", "exec"))})
    namespace: dict = {}
    known(text, {}, namespace)
    assert namespace["make"]() == "precompiled" and known.hits == 1
    other: dict = {}
    known("def make():\n    return 'other'\n", {}, other)
    assert other["make"]() == "other" and known.hits == 1 and len(known.codes) == 1
    recorder = GeneratedCode({}, record=True)
    recorder(text, {}, namespace)
    assert namespace["make"]() == "from text" and list(recorder.codes) == [text]


# --- what the server hands the page's boot (server.page_assets) -----------------------------------

def _bundle_for(app_zip: bytes):
    from server.bytecode import BytecodeBundle
    from server.page_assets import ROOT

    return BytecodeBundle(app_zip, ROOT / "static", "/static/vendor/pyodide/314.0.7/pyodide.mjs")


def test_a_built_bundle_is_named_by_its_sources_and_listed_in_the_boot_manifest(tmp_path, monkeypatch):
    from server.page_assets import boot_manifest as _boot_manifest

    monkeypatch.setenv("CELLHUB_BYTECODE_DIR", str(tmp_path))
    monkeypatch.setenv("CELLHUB_BYTECODE", "1")
    bundle, other = _bundle_for(b"app zip one"), _bundle_for(b"app zip two")
    assert bundle.key != other.key and bundle.key == _bundle_for(b"app zip one").key
    bundle.path.write_bytes(b"gzip of a bundle")  # as a finished build leaves it
    assert bundle.current() == b"gzip of a bundle"
    manifest = json.loads(_boot_manifest(bundle, ["a-1.0-py3-none-any.whl"], 7))
    assert manifest == {"project": "/api/projects/7", "wheels": ["/static/wheels/a-1.0-py3-none-any.whl"],
                        "bytecode": f"/bytecode-{bundle.key}.bin"}


def test_without_a_bundle_the_manifest_names_none_and_the_page_compiles_its_modules(tmp_path, monkeypatch):
    from server.page_assets import boot_manifest as _boot_manifest

    monkeypatch.setenv("CELLHUB_BYTECODE_DIR", str(tmp_path))
    monkeypatch.setenv("CELLHUB_BYTECODE", "0")  # also: no build is started
    bundle = _bundle_for(b"app zip")
    assert bundle.current() is None and list(tmp_path.iterdir()) == []
    manifest = json.loads(_boot_manifest(bundle, [], None))
    assert manifest == {"project": None, "wheels": [], "bytecode": None}
    assert "<" not in _boot_manifest(bundle, ["</script><script>alert(1)</script>"], None)


def test_the_bytecode_command_builds_the_pages_bundle_with_node_and_pyodide(tmp_path, monkeypatch):
    """``python -m server bytecode`` (run by the set-up): the real build, once; then found."""
    from server.cli import main

    monkeypatch.setenv("CELLHUB_BYTECODE_DIR", str(tmp_path))
    monkeypatch.setenv("CELLHUB_BYTECODE", "1")
    assert main(["bytecode"]) == 0
    built = list(tmp_path.glob("*.bin.gz"))
    assert len(built) == 1 and built[0].stat().st_size > 100_000
    stamp = built[0].stat().st_mtime_ns
    assert main(["bytecode"]) == 0 and built[0].stat().st_mtime_ns == stamp  # not built twice
    monkeypatch.setenv("CELLHUB_BYTECODE", "0")
    assert main(["bytecode"]) == 0 and list(tmp_path.glob("*.lock")) == []
