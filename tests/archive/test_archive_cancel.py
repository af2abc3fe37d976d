"""Cancellation inside the long per-image steps of ``write_archive`` (issue 4).

A checkpoint that raises from its k-th call of a stage must stop the archive INSIDE the step
that was running (decoding or encoding one overlay, writing one big JSON member, the objects
of one big image, assembling the XLSX), not at the next image: the exception comes out
unchanged, the step's later checkpoints never happen, and no further member is written.
"""
import zipfile

import numpy as np
import pytest
import tifffile
from PIL import Image

from app.models import ExportOptions
from server.archive import write_archive
from server.archive.metrics_process import MetricsFilesProcess
from server.domain import ImageRecord, ProjectRecord, SegObject
from server.imaging import read_image

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


class Cancelled(Exception):
    pass


class Probe:
    """A checkpoint that records every call and raises ``Cancelled`` from the ``after``-th
    call that ``when(stage, fraction, message)`` accepts."""

    def __init__(self, when=lambda *call: False, after=1):
        self.calls = []
        self.when = when
        self.after = after
        self.hits = 0

    def __call__(self, stage, fraction, message):
        self.calls.append((stage, fraction, message))
        if self.when(stage, fraction, message):
            self.hits += 1
            if self.hits >= self.after:
                raise Cancelled(f"cancelled at {stage}: {message}")


def _noise_png(path, size, seed=1):
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size), dtype=np.uint8)
    Image.fromarray(pixels, mode="L").save(path, compress_level=1)
    return str(path)


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return zf.namelist()


def _circles(n, size, cell=20):
    t = np.linspace(0, 2 * np.pi, 24, endpoint=False)
    cols = size // cell
    out = []
    for k in range(n):
        cx, cy = (k % cols + 0.5) * cell, (k // cols % cols + 0.5) * cell
        out.append(SegObject(k + 1, "cell", [[[(float(cx + 6 * np.cos(a)), float(cy + 6 * np.sin(a))) for a in t]]]))
    return out


def _calls_in_step(calls, stage, message):
    return [c for c in calls if c[0] == stage and c[2] == message]


def test_cancel_inside_an_overlay_png_encode_stops_that_image(tmp_path):
    path = _noise_png(tmp_path / "big.png", 768)
    images = [ImageRecord(i, f"im{i}.png", 768, 768, path, _circles(10, 768)) for i in (1, 2)]
    project = ProjectRecord(1, "p", ["cell"], images=images)
    options = ExportOptions(annotation_formats=[], include_visualizations=True)
    step = "Visualizations: 1 of 2"

    full = Probe()
    write_archive(project, images, options, tmp_path / "full.zip", full)
    encode_calls = [c for c in _calls_in_step(full.calls, "visualizations", step) if c[1] > 0]
    assert len(encode_calls) >= 4, "the PNG encode of one big overlay polls the checkpoint repeatedly"

    # Cancel at the 2nd call after drawing is done (progress 0.8 of the image): the encode.
    probe = Probe(lambda s, f, m: s == "visualizations" and m == step and f == encode_calls[0][1], after=2)
    dest = tmp_path / "cancelled.zip"
    with pytest.raises(Cancelled):
        write_archive(project, images, options, dest, probe)
    assert len(_calls_in_step(probe.calls, "visualizations", step)) < len(_calls_in_step(full.calls, "visualizations", step))
    assert not any(m == "Visualizations: 2 of 2" for _, _, m in probe.calls)
    names = _members(dest)
    assert "visualizations/im2_overlay.png" not in names and "README.md" not in names
    with zipfile.ZipFile(dest) as zf, zipfile.ZipFile(tmp_path / "full.zip") as whole:
        # The overlay being encoded was cut short (the partial file is the caller's to delete).
        assert zf.getinfo("visualizations/im1_overlay.png").file_size < whole.getinfo("visualizations/im1_overlay.png").file_size


@pytest.mark.parametrize("kind", ["png", "tif"])
def test_cancel_while_decoding_propagates_unchanged(tmp_path, kind):
    pixels = np.random.default_rng(2).integers(0, 4096, (512, 512)).astype(np.uint16 if kind == "tif" else np.uint8)
    path = tmp_path / f"big.{kind}"
    if kind == "tif":
        tifffile.imwrite(path, pixels, rowsperstrip=16)
    else:
        Image.fromarray(pixels).save(path)
    reads = []

    def check():
        reads.append(1)
        if len(reads) == 2:
            raise Cancelled("during decode")

    with pytest.raises(Cancelled):  # not turned into ImageReadError (a ValueError)
        read_image(str(path), check)
    assert len(reads) == 2
    assert np.array_equal(read_image(str(path), lambda: None), read_image(str(path)))


def test_cancel_while_decoding_an_overlay_source_is_not_taken_for_an_unreadable_file(tmp_path):
    """The writer turns an unreadable image into a warning and a black overlay; a cancel raised
    from inside the decoder must not be mistaken for that."""
    path = _noise_png(tmp_path / "big.png", 1024)
    images = [ImageRecord(1, "a.png", 1024, 1024, path, _circles(3, 1024))]
    project = ProjectRecord(1, "p", ["cell"], images=images)
    # The 1st visualization call is the image's start; the next ones come from the decoder's reads.
    probe = Probe(lambda s, f, m: s == "visualizations", after=3)
    with pytest.raises(Cancelled):
        write_archive(project, images, ExportOptions(annotation_formats=[], include_visualizations=True),
                      tmp_path / "o.zip", probe)
    assert not any("drawn on black" in m for _, _, m in probe.calls)
    assert "visualizations/a_overlay.png" not in _members(tmp_path / "o.zip")


def test_cancel_inside_a_big_json_member_stops_before_the_next_member(tmp_path):
    images = [ImageRecord(i, f"im{i}.png", 400, 400, None, _circles(300, 400)) for i in range(1, 4)]
    project = ProjectRecord(1, "p", ["cell"], images=images)
    options = ExportOptions(annotation_formats=["coco", "yolo"])
    step = "COCO: image 1 of 3"

    full = Probe()
    write_archive(project, images, options, tmp_path / "full.zip", full)
    inside = _calls_in_step(full.calls, "annotations", step)
    assert len(inside) >= 2, "300 objects are more than one step of objects"

    probe = Probe(lambda s, f, m: m == step, after=2)
    with pytest.raises(Cancelled):
        write_archive(project, images, options, tmp_path / "c.zip", probe)
    assert not any(m == "COCO: image 2 of 3" for _, _, m in probe.calls)
    names = _members(tmp_path / "c.zip")
    # Nothing after the member being written, and not that member either: it is deflated on a
    # thread into a temporary file and joins the zip only once complete.
    assert names == []


def test_polls_inside_a_member_larger_than_64_kib(tmp_path):
    # One image whose COCO text alone is far over 64 KiB: the checkpoint runs while it is written.
    images = [ImageRecord(1, "a.png", 2000, 2000, None, _circles(2500, 2000))]
    project = ProjectRecord(1, "p", ["cell"], images=images)
    probe = Probe()
    write_archive(project, images, ExportOptions(annotation_formats=["json"]), tmp_path / "a.zip", probe)
    repeats = [c for c in probe.calls if c[2] == "Project JSON: image 1 of 1"]
    assert len(repeats) >= 3  # its start, then again for every further 64 KiB of the member


def test_cancel_in_metrics_kills_the_metrics_process_without_finishing_it(tmp_path, monkeypatch):
    made, closed = [], []
    real_init, real_close = MetricsFilesProcess.__init__, MetricsFilesProcess.close
    monkeypatch.setattr(MetricsFilesProcess, "__init__", lambda self, *a, **k: (made.append(self), real_init(self, *a, **k))[1])
    monkeypatch.setattr(MetricsFilesProcess, "close", lambda self, *a: (closed.append(1), real_close(self, *a))[1])
    images = [ImageRecord(i, f"im{i}.png", 400, 400, None, _circles(300, 400)) for i in range(1, 3)]
    project = ProjectRecord(1, "p", ["cell"], images=images)
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    probe = Probe(lambda s, f, m: m == "Metrics: image 2 of 2", after=2)  # inside image 2's objects
    with pytest.raises(Cancelled):
        write_archive(project, images, ExportOptions(annotation_formats=[], metrics_formats=["csv", "xlsx"]),
                      tmp_path / "m.zip", probe, tmpdir=str(tmp))
    assert closed == [] and len(made) == 1
    assert made[0]._proc.returncode is not None  # the metrics process is gone, not left running
    assert list(tmp.iterdir()) == []
    assert not any(n.startswith("metrics/") for n in _members(tmp_path / "m.zip"))


def test_cancel_while_the_metrics_files_are_finished(tmp_path):
    columns = [{"name": f"c{i}", "unit": "", "definition": "", "source": ""} for i in range(20)]
    files = MetricsFilesProcess(tmp_path, ["csv", "json", "xlsx"], columns, tmpdir=str(tmp_path))
    files.write_rows([[float(r * 20 + c) for c in range(20)] for r in range(20000)])  # about a second of writing in the child
    checks = []

    def check():
        checks.append(1)
        if len(checks) == 2:
            raise Cancelled

    with pytest.raises(Cancelled):
        files.close(check)
    assert len(checks) == 2  # the caller did not wait for the files
    assert files._proc.returncode is not None  # killed, not left to finish
    assert list(tmp_path.iterdir()) == []


def test_an_image_copy_is_checked_every_256_kib(tmp_path):
    big = tmp_path / "big.bin"
    big.write_bytes(np.random.default_rng(3).bytes(2 * (1 << 20)))
    images = [ImageRecord(1, "big.png", 10, 10, str(big))]
    project = ProjectRecord(1, "p", ["c"], images=images)
    probe = Probe(lambda s, f, m: s == "images", after=4)
    with pytest.raises(Cancelled):
        write_archive(project, images, ExportOptions(annotation_formats=[], include_images=True), tmp_path / "o.zip", probe)
    with zipfile.ZipFile(tmp_path / "o.zip") as zf:
        # The image's start, then one call per 256 KiB: cancelled after 3 of its 8 chunks.
        assert zf.getinfo("images/big.png").file_size == 3 * (256 << 10)


def test_objects_of_one_big_image_are_measured_in_steps(tmp_path):
    images = [ImageRecord(1, "a.png", 2000, 2000, None, _circles(1000, 2000))]
    project = ProjectRecord(1, "p", ["cell"], images=images)
    probe = Probe()
    write_archive(project, images, ExportOptions(annotation_formats=[], metrics_formats=["csv"]), tmp_path / "a.zip", probe)
    fractions = [f for s, f, m in probe.calls if m == "Metrics: image 1 of 1"]
    assert len(set(fractions)) >= 4  # 1000 objects: its start and a report after every 256

