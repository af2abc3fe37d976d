"""The Python client against the real server (issue 21): start, progress (WebSocket and
polling), a start whose answer was lost, a download cut and resumed, a corrupt archive
refused, bad tokens. Ctrl+C at each stage: ``test_client_interrupt.py``."""
from __future__ import annotations

import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest

from testkit.cutting_proxy import Rule
from tests.client.conftest import Hub, leftovers, sha256_of

OPTIONS = {"annotation_formats": ["coco", "yolo"], "metrics_formats": ["csv"]}


def test_export_follows_progress_on_the_websocket_and_saves_a_verified_archive(cellhub, hub: Hub, tmp_path):
    hub.hooks(delay_per_checkpoint_ms=40)  # about two seconds of progress events
    updates = []
    with hub.proxy() as proxy:
        client = cellhub.Client(proxy.url, token=hub.token)
        result = client.export(hub.project_id, OPTIONS, tmp_path / "out.zip", progress=updates.append)
    state = hub.job_state(result.job.id)
    assert result.path == tmp_path / "out.zip" and leftovers(tmp_path) == ["out.zip"]
    assert sha256_of(result.path) == result.sha256 == state["sha256"] == result.job.sha256
    assert state["delivered"] is True and state["downloads_served"] == 1
    with zipfile.ZipFile(result.path) as archive:
        names = archive.namelist()
    assert "yolo/data.yaml" in names and "metrics/metrics.csv" in names
    assert result.metadata["files"].keys() == set(names) - {"metadata.json"}
    phases = [u.phase for u in updates]
    assert phases.index("download") > phases.index("export") and "export" not in phases[phases.index("download"):]
    percents = [u.percent for u in updates if u.phase == "export"]
    assert len(percents) >= 5 and percents == sorted(percents) and percents[-1] == 100
    assert [u.done_bytes for u in updates if u.phase == "download"][-1] == result.size_bytes
    job_reads = [t for m, t in proxy.requests if m == "GET" and t == f"/api/exports/{result.job.id}"]
    assert len(job_reads) <= 3, "followed on the socket: the job is read when it opens and at completion"
    assert ("GET", "/api/ws") in proxy.requests


def test_without_a_websocket_progress_is_polled_with_backoff(cellhub, hub: Hub, tmp_path):
    hub.hooks(delay_per_checkpoint_ms=150)  # a few seconds
    updates = []
    with hub.proxy() as proxy:
        client = cellhub.Client(proxy.url, token=hub.token, use_websocket=False)
        result = client.export(hub.project_id, OPTIONS, tmp_path / "out.zip", progress=updates.append)
    reads = [t for m, t in proxy.requests if t == f"/api/exports/{result.job.id}"]
    assert len(reads) >= 3 and ("GET", "/api/ws") not in proxy.requests
    assert [u.percent for u in updates if u.phase == "export"][-1] == 100
    assert sha256_of(result.path) == hub.job_state(result.job.id)["sha256"]


def test_a_start_whose_answer_was_lost_is_asked_again_and_gets_the_same_job(cellhub, hub: Hub, tmp_path):
    with hub.proxy() as proxy:
        lost = proxy.add(Rule("POST", r"/exports\?start_token=", lose_answer=True))
        result = cellhub.Client(proxy.url, token=hub.token).export(hub.project_id, OPTIONS, tmp_path / "out.zip")
    starts = [t for m, t in proxy.requests if m == "POST"]
    assert lost.applied == 1 and len(starts) == 2 and starts[0] == starts[1]  # the same start token twice
    assert [job["id"] for job in hub.history()] == [result.job.id]  # one export, not two
    assert result.job.start_token == starts[0].split("start_token=")[1]


def test_a_download_cut_twice_resumes_where_it_stopped(cellhub, hub: Hub, tmp_path):
    client = cellhub.Client(hub.url, token=hub.token)
    job = client.wait(client.start_export(hub.project_id, {**OPTIONS, "include_images": True}))
    assert job.size_bytes > 300_000
    with hub.proxy() as proxy:
        cuts = proxy.add(Rule("GET", "/download$", times=2, cut_after=120_000))
        result = cellhub.Client(proxy.url, token=hub.token).download(job.id, tmp_path / "out.zip")
    assert cuts.applied == 2 and result.resumed == 2
    state = hub.job_state(job.id)
    assert state["downloads_served"] == 3  # one 200, then two 206 that continue it
    assert sha256_of(result.path) == state["sha256"] and leftovers(tmp_path) == ["out.zip"]
    asked = [h for (m, t), h in zip(proxy.requests, proxy.headers) if t.endswith("/download")]
    assert "range" not in asked[0]
    firsts = [int(h["range"].removeprefix("bytes=").removesuffix("-")) for h in asked[1:]]
    assert len(firsts) == 2 and 0 < firsts[0] < firsts[1] < job.size_bytes  # each try continues the last
    assert all(h["if-range"] == f'"{state["sha256"]}"' for h in asked[1:])


def test_a_part_file_left_by_an_earlier_run_is_resumed(cellhub, hub: Hub, tmp_path):
    client = cellhub.Client(hub.url, token=hub.token)
    job = client.wait(client.start_export(hub.project_id, OPTIONS))
    whole = hub.user.http.get(f"/api/exports/{job.id}/download").content
    (tmp_path / f".out.zip.{job.id}.part").write_bytes(whole[:1000])
    with hub.proxy() as proxy:
        result = cellhub.Client(proxy.url, token=hub.token).download(job.id, tmp_path / "out.zip")
    assert result.path.read_bytes() == whole and leftovers(tmp_path) == ["out.zip"]
    assert hub.job_state(job.id)["downloads_served"] == 2
    asked = [h for (m, t), h in zip(proxy.requests, proxy.headers) if t.endswith("/download")]
    assert [h.get("range") for h in asked] == ["bytes=1000-"]  # only the missing bytes were asked for


def test_a_damaged_archive_is_refused_and_nothing_is_kept(cellhub, hub: Hub, tmp_path):
    client = cellhub.Client(hub.url, token=hub.token)
    job = client.wait(client.start_export(hub.project_id, OPTIONS))
    archive = hub.live.app.state.store.archive_path(job.id)
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    archive.write_bytes(bytes(data))
    (tmp_path / "out.zip").write_bytes(b"an older file")
    with pytest.raises(cellhub.ArchiveCorrupt, match="SHA-256"):
        client.download(job.id, tmp_path / "out.zip")
    assert leftovers(tmp_path) == ["out.zip"] and (tmp_path / "out.zip").read_bytes() == b"an older file"


def test_a_member_that_differs_from_metadata_json_is_refused(cellhub, hub: Hub, tmp_path):
    """The file matches its ETag (the server hashed it so), but a member was changed after
    metadata.json listed it."""
    client = cellhub.Client(hub.url, token=hub.token)
    job = client.wait(client.start_export(hub.project_id, OPTIONS))
    archive = hub.live.app.state.store.archive_path(job.id)
    rebuilt = io.BytesIO()
    with zipfile.ZipFile(archive) as source, zipfile.ZipFile(rebuilt, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            data = source.read(info)
            if info.filename == "metrics/metrics.csv":
                data = data.replace(b"\n", b"\n#", 1)
            target.writestr(info, data)
    archive.write_bytes(rebuilt.getvalue())
    hub.live.app.state.db.execute("UPDATE jobs SET archive_sha256 = ? WHERE id = ?",
                                  (hashlib.sha256(rebuilt.getvalue()).hexdigest(), job.id))
    with pytest.raises(cellhub.ArchiveCorrupt, match="metrics/metrics.csv"):
        cellhub.Client(hub.url, token=hub.token).download(job.id, tmp_path / "out.zip")
    assert leftovers(tmp_path) == []


def test_bad_revoked_and_missing_tokens_are_refused_saying_why(cellhub, hub: Hub):
    with pytest.raises(cellhub.AuthenticationFailed, match="unknown API token"):
        cellhub.Client(hub.url, token="chub_" + "0" * 43).projects()
    with pytest.raises(cellhub.AuthenticationFailed, match="sign in"):
        cellhub.Client(hub.url, token="").projects()
    client = cellhub.Client(hub.url, token=hub.token)
    assert [p["id"] for p in client.projects()] == [hub.project_id]
    token_id = hub.user.http.get("/api/tokens").json()[0]["id"]
    assert hub.user.http.delete(f"/api/tokens/{token_id}").status_code == 200
    with pytest.raises(cellhub.AuthenticationFailed, match="revoked") as refused:
        client.start_export(hub.project_id, OPTIONS)
    assert refused.value.status == 401
    assert hub.history() == []


def test_a_token_revoked_while_an_export_is_followed_stops_the_client(cellhub, hub: Hub, tmp_path):
    hub.hooks(hold_before_complete=True)
    client = cellhub.Client(hub.url, token=hub.token)
    job = client.start_export(hub.project_id, OPTIONS)
    token_id = hub.user.http.get("/api/tokens").json()[0]["id"]

    def revoke_once_running(update) -> None:
        if update.job.status == "running" and not revoked:
            revoked.append(hub.user.http.delete(f"/api/tokens/{token_id}").status_code)

    revoked: list[int] = []
    with pytest.raises(cellhub.AuthenticationFailed, match="revoked"):
        client.wait(job, progress=revoke_once_running)
    assert revoked == [200]


def test_bad_options_are_refused_before_anything_is_sent_naming_the_field(cellhub, hub: Hub):
    with hub.proxy() as proxy:
        client = cellhub.Client(proxy.url, token=hub.token)
        with pytest.raises(cellhub.InvalidRequest) as bad:
            client.export(hub.project_id, {"annotation_formats": ["xml"], "pixel_size_um": 0}, "never.zip")
        assert proxy.requests == []
    assert {p["field"] for p in bad.value.problems} == {"annotation_formats.0", "pixel_size_um"}
    with pytest.raises(cellhub.InvalidRequest) as unknown_image:
        cellhub.Client(hub.url, token=hub.token).start_export(hub.project_id, {"image_ids": [999999]})
    assert unknown_image.value.problems[0]["field"] == "image_ids" and unknown_image.value.status == 422
    with pytest.raises(cellhub.NotFound):
        cellhub.Client(hub.url, token=hub.token).project(987654)


def test_a_running_export_with_the_same_options_is_attached_to(cellhub, hub: Hub, tmp_path):
    hub.hooks(delay_per_checkpoint_ms=20)
    page = hub.user.start(OPTIONS).json()  # started by the page of the same user
    result = cellhub.Client(hub.url, token=hub.token).export(hub.project_id, OPTIONS, tmp_path / "out.zip")
    assert result.job.id == page["id"] and len(hub.history()) == 1
    other = hub.user.start({"annotation_formats": ["json"]}).json()
    with pytest.raises(cellhub.ExportActive) as busy:
        cellhub.Client(hub.url, token=hub.token).export(hub.project_id, OPTIONS, tmp_path / "other.zip")
    assert busy.value.job.id == other["id"]


def test_cancel_after_download_reports_already_downloaded(cellhub, hub: Hub, tmp_path):
    client = cellhub.Client(hub.url, token=hub.token)
    result = client.export(hub.project_id, OPTIONS, tmp_path / "out.zip")
    with pytest.raises(cellhub.AlreadyDownloaded, match="already downloaded") as late:
        client.cancel(result.job.id)
    assert late.value.job.id == result.job.id and late.value.job.delivered is True
    again = client.download(result.job.id, tmp_path / "again.zip")
    assert again.sha256 == result.sha256


def test_the_wheel_carries_the_pages_shared_modules_byte_for_byte(cellhub, client_site):
    root = Path(__file__).resolve().parents[2]
    for name in ("models.py", "errors.py", "routes.py"):
        assert (client_site / "cellhub_client" / "shared" / name).read_bytes() == (root / "app" / name).read_bytes()
    metadata = (next(client_site.glob("cellhub_client-*.dist-info")) / "METADATA").read_text()
    requires = [line for line in metadata.splitlines() if line.startswith("Requires-Dist:")]
    assert any("requests" in line for line in requires) and not any("fastapi" in line for line in requires)
    assert json.loads(cellhub.ExportOptions().model_dump_json())["annotation_formats"] == ["coco"]
