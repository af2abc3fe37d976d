"""POST /api/projects/import against a real uvicorn server and a real SQLite file, with the
real microscopy data of shared/data/cells (object counts from its SOURCES.md)."""
from __future__ import annotations

import io
import json
import stat
import zipfile
from pathlib import Path

import httpx
import pytest

from server.archive.coco import coco_dict
from server.imports import load_label_images
from server.imports.api import Refused, unpack_zip, upload_name
from tests.service.conftest import Live, start_live

BBBC039_A02 = "IXMtest_A02_s1_w1051DAA7C-7042-435F-99F0-1E847D9B42CB"
DSB_IDS = {  # full ImageId -> objects (SOURCES.md)
    "00071198d059ba7f5914a526d124d28e6d010c92466da21d4a04cd5413362552": 27,
    "0bf4b144167694b6846d584cf52c458f34f28fcae75328a2a096c8214e01c0d0": 57,
}


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    # One server for the module: every test compares what is stored before and after.
    srv = start_live(tmp_path_factory.mktemp("import-api") / "data")
    yield srv
    srv.stop()


@pytest.fixture
def stardist(cells_dir) -> dict[str, tuple[Path, Path]]:
    root = cells_dir / "stardist_dsb2018"
    return {
        "512": (root / "stardist/data/images/img2d.tif", root / "stardist/data/images/mask2d.tif"),
        "256": (root / "tests/data/img2d.tif", root / "tests/data/mask2d.tif"),
    }


def _stored(live: Live) -> tuple:
    """Everything an import could leave behind: project rows, image rows, files."""
    db = live.app.state.db
    projects = [r["id"] for r in db.all("SELECT id FROM projects ORDER BY id")]
    images = db.one("SELECT COUNT(*) AS n FROM images")["n"]
    files = sorted(str(p.relative_to(live.data_dir)) for p in (live.data_dir / "files").rglob("*"))
    return projects, images, files


def _uploads_left(live: Live) -> list[Path]:
    uploads = live.data_dir / "uploads"
    return list(uploads.rglob("*")) if uploads.exists() else []


def _post(client: httpx.Client, data: dict, files: list) -> httpx.Response:
    return client.post("/api/projects/import", data=data, files=files)


def _counts(client: httpx.Client, project_id: int) -> tuple[dict, dict[str, int]]:
    r = client.get(f"/api/projects/{project_id}")
    assert r.status_code == 200, r.text
    project = r.json()
    return project, {im["file_name"]: im["object_count"] for im in project["images"]}


def _assert_no_server_path(live: Live, r: httpx.Response) -> None:
    assert str(live.data_dir) not in r.text and "import-" not in r.text and "uploads" not in r.text


def test_labels_upload_of_the_stardist_pairs_creates_the_project(live: Live, stardist):
    alice = live.new_user()
    before = _stored(live)
    files = []
    for key, (image, mask) in stardist.items():
        files.append(("images", (f"stardist_{key}.tif", image.read_bytes(), "image/tiff")))
        files.append(("masks", (f"stardist_{key}_mask.tif", mask.read_bytes(), "image/tiff")))
    r = _post(alice.http, {"format": "labels", "name": "StarDist DSB", "pixel_size_um": "0.5",
                           "label_suffix": "_mask"}, files)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["name"], body["images"], body["objects"]) == ("StarDist DSB", 2, 190)
    _assert_no_server_path(live, r)
    project, counts = _counts(alice.http, body["project_id"])
    assert counts == {"stardist_512.tif": 125, "stardist_256.tif": 65}
    assert (project["name"], project["pixel_size_um"], project["synthetic"]) == ("StarDist DSB", 0.5, False)
    assert body["project_id"] in [p["id"] for p in alice.http.get("/api/projects").json()]
    projects, images, _ = _stored(live)
    assert projects == before[0] + [body["project_id"]] and images == before[1] + 2
    assert _uploads_left(live) == []


def test_patches_upload_of_one_bbbc039_image_decodes_touching_nuclei(live: Live, cells_dir):
    alice = live.new_user()
    root = cells_dir / "bbbc039_u2os"
    files = [("images", (f"{BBBC039_A02}.tif", (root / "images" / f"{BBBC039_A02}.tif").read_bytes())),
             ("masks", (f"{BBBC039_A02}.png", (root / "masks" / f"{BBBC039_A02}.png").read_bytes()))]
    r = _post(alice.http, {"format": "patches"}, files)
    assert r.status_code == 201, r.text
    assert (r.json()["images"], r.json()["objects"]) == (1, 110)  # 94 if R > 0 were one binary mask
    project, counts = _counts(alice.http, r.json()["project_id"])
    assert counts == {f"{BBBC039_A02}.tif": 110}
    assert project["name"] == BBBC039_A02  # no name given: the image's stem


def _dsb_zip(cells_dir: Path, extra: dict[str, bytes] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for image_id in DSB_IDS:
            folder = cells_dir / "bbbc038_dsb2018" / "stage1_train" / image_id
            for path in sorted(folder.rglob("*.png")):
                zf.write(path, f"stage1_train/{path.relative_to(folder.parent).as_posix()}")
        for name, data in (extra or {}).items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_dsb_zip_upload_imports_one_image_per_folder(live: Live, cells_dir):
    alice = live.new_user()
    archive = _dsb_zip(cells_dir, {"__MACOSX/stage1_train/._junk": b"\0\5\26\7"})
    r = _post(alice.http, {"format": "dsb"}, [("archive", ("dsb_two.zip", archive, "application/zip"))])
    assert r.status_code == 201, r.text
    assert (r.json()["images"], r.json()["objects"]) == (2, sum(DSB_IDS.values()))
    project, counts = _counts(alice.http, r.json()["project_id"])
    assert counts == {f"{image_id}.png": n for image_id, n in DSB_IDS.items()}
    assert project["name"] == "stage1_train"  # the zip's top folder
    assert _uploads_left(live) == []


def test_coco_written_by_the_exporter_imports_with_the_same_objects(live: Live, stardist):
    alice = live.new_user()
    image, mask = stardist["256"]
    plan = load_label_images([(image, mask)], name="StarDist 256")
    coco = coco_dict(plan.to_project(), plan.images)
    assert [im["file_name"] for im in coco["images"]] == ["img2d.tif"]
    files = [("annotations", ("instances.json", json.dumps(coco).encode(), "application/json")),
             ("images", ("img2d.tif", image.read_bytes(), "image/tiff")),
             ("images", ("unused.tif", image.read_bytes(), "image/tiff"))]
    r = _post(alice.http, {"format": "coco"}, files)
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["name"], body["images"], body["objects"]) == ("StarDist 256", 1, 65)
    assert any("unused.tif" in w and "not imported" in w for w in body["warnings"])
    _, counts = _counts(alice.http, body["project_id"])
    assert counts == {"img2d.tif": 65}


def test_without_the_csrf_header_is_403_and_stores_nothing(live: Live, stardist):
    alice = live.new_user()
    before = _stored(live)
    image, mask = stardist["256"]
    no_header = httpx.Client(base_url=live.base_url, cookies=alice.http.cookies, timeout=30)
    with no_header:
        r = _post(no_header, {"format": "labels"},
                  [("images", ("a.tif", image.read_bytes())), ("masks", ("a.tif", mask.read_bytes()))])
    assert r.status_code == 403
    assert _stored(live) == before and _uploads_left(live) == []


def test_without_a_session_is_401(live: Live, stardist):
    image, mask = stardist["256"]
    with httpx.Client(base_url=live.base_url, headers={"X-Requested-With": "cellhub"}, timeout=30) as anon:
        r = _post(anon, {"format": "labels"},
                  [("images", ("a.tif", image.read_bytes())), ("masks", ("a.tif", mask.read_bytes()))])
    assert r.status_code == 401


def test_mask_shape_mismatch_is_422_naming_the_file_and_stores_nothing(live: Live, stardist):
    alice = live.new_user()
    before = _stored(live)
    image_256, mask_256 = stardist["256"]
    _, mask_512 = stardist["512"]
    files = [("images", ("good.tif", image_256.read_bytes())), ("masks", ("good_mask.tif", mask_256.read_bytes())),
             ("images", ("cells.tif", image_256.read_bytes())), ("masks", ("cells_mask.tif", mask_512.read_bytes()))]
    r = _post(alice.http, {"format": "labels", "label_suffix": "_mask"}, files)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert len(detail) == 1
    assert detail[0]["field"] == "masks"
    assert "mask shape differs" in detail[0]["reason"] and "masks/cells_mask.tif" in detail[0]["reason"]
    assert "images/cells.tif" in detail[0]["reason"]
    _assert_no_server_path(live, r)
    assert _stored(live) == before and _uploads_left(live) == []


def test_form_problems_are_listed_together(live: Live, stardist):
    alice = live.new_user()
    image, _ = stardist["256"]
    r = _post(alice.http, {"format": "labels", "pixel_size_um": "5000"},
              [("images", ("a.tif", image.read_bytes())), ("annotations", ("x.json", b"{}"))])
    assert r.status_code == 422, r.text
    fields = {p["field"] for p in r.json()["detail"]}
    assert fields == {"pixel_size_um", "masks", "annotations"}
    r = _post(alice.http, {"format": "yolo"}, [("images", ("a.tif", image.read_bytes()))])
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "format"


def test_unmatched_files_and_bad_names_are_422(live: Live, stardist):
    alice = live.new_user()
    image, mask = stardist["256"]
    files = [("images", ("a.tif", image.read_bytes())), ("masks", ("a.tif", mask.read_bytes())),
             ("masks", ("b.tif", mask.read_bytes())), ("images", (".hidden.tif", image.read_bytes())),
             ("images", ("notes.txt", b"hello"))]
    r = _post(alice.http, {"format": "labels"}, files)
    assert r.status_code == 422, r.text
    reasons = " | ".join(p["reason"] for p in r.json()["detail"])
    assert "b.tif matches no uploaded image" in reasons
    assert ".hidden.tif" in reasons and "notes.txt: not an image file name" in reasons


def test_too_large_uploads_are_413_and_store_nothing(tmp_path, cells_dir):
    srv = start_live(tmp_path / "data", max_upload_bytes=300_000)
    try:
        alice = srv.new_user()
        before = _stored(srv)
        big = (cells_dir / "bbbc039_u2os" / "images" / f"{BBBC039_A02}.tif").read_bytes()  # 726 KB
        r = _post(alice.http, {"format": "patches"}, [("images", ("big.tif", big)), ("masks", ("big.png", b"x"))])
        assert r.status_code == 413, r.text
        assert r.json()["detail"][0]["field"] == "images" and "big.tif" in r.json()["detail"][0]["reason"]
        parts = [("images", (f"p{k}.tif", b"\0" * 120_000)) for k in range(3)]  # each under, together over
        r = _post(alice.http, {"format": "labels"}, parts)
        assert r.status_code == 413 and "together" in r.json()["detail"][0]["reason"]
        bomb = io.BytesIO()
        with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("a/images/a.png", b"\0" * 2_000_000)  # a few KB packed
        r = _post(alice.http, {"format": "dsb"}, [("archive", ("bomb.zip", bomb.getvalue()))])
        assert r.status_code == 413 and "unpacks to more than" in r.json()["detail"][0]["reason"]
        _assert_no_server_path(srv, r)
        assert _stored(srv) == before and _uploads_left(srv) == []
    finally:
        srv.stop()


def test_zip_with_a_parent_entry_is_422_and_writes_nothing(live: Live, cells_dir):
    alice = live.new_user()
    before = _stored(live)
    archive = _dsb_zip(cells_dir, {"../evil.png": b"x", "stage1_train/../../evil2.png": b"x"})
    r = _post(alice.http, {"format": "dsb"}, [("archive", ("dsb.zip", archive))])
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert {p["field"] for p in detail} == {"archive"}
    assert any("'../evil.png'" in p["reason"] for p in detail)
    assert any("evil2.png" in p["reason"] for p in detail)
    assert not list(live.data_dir.parent.rglob("evil*.png"))
    assert _stored(live) == before and _uploads_left(live) == []
    r = _post(alice.http, {"format": "dsb"}, [("archive", ("x.zip", b"not a zip"))])
    assert r.status_code == 422 and "x.zip is not a zip file" in r.json()["detail"][0]["reason"]


def test_unpack_zip_refuses_traversal_before_writing_anything(tmp_path):
    archive = tmp_path / "in.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok/images/ok.png", b"x")
        zf.writestr("../../evil.png", b"x")
        zf.writestr("/abs/evil.png", b"x")
        zf.writestr("ok\\..\\..\\evil.png", b"x")
        link = zipfile.ZipInfo("ok/masks/link.png")
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    dest = tmp_path / "a" / "b" / "unpacked"
    dest.mkdir(parents=True)
    with pytest.raises(Refused) as caught:
        unpack_zip(archive, dest, 10_000, 10_000)
    assert caught.value.status == 422 and len(caught.value.problems) == 4
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["a", "b", "in.zip", "unpacked"]


def test_upload_names_keep_only_the_last_component():
    assert upload_name("folder/sub/x.png") == ("x.png", "")
    assert upload_name("C:\\data\\x.tif") == ("x.tif", "")
    assert upload_name("..")[0] is None and upload_name("a/")[0] is None
    assert upload_name(".DS_Store")[0] is None and upload_name("a\x00b.png")[0] is None
