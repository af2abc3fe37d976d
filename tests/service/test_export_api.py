"""Export jobs over real HTTP and WebSocket against the real app and a real SQLite file (R1-R8)."""
from __future__ import annotations

import io
import json
import threading
import time
import zipfile

import pytest
from pycocotools.coco import COCO

from tests.service.conftest import Live, start_live
from testkit.api_session import recv_events


def _coco_from_zip(data: bytes, tmp_path) -> COCO:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        path = tmp_path / "annotations.json"
        path.write_bytes(zf.read("annotations/coco/annotations.json"))
    return COCO(str(path))


def test_export_runs_to_completion_with_events_and_a_loadable_coco_zip(live: Live, tmp_path):
    alice = live.new_user()
    with alice.websocket() as ws:
        r = alice.start({"annotation_formats": ["coco"]})
        assert r.status_code == 202, r.text
        job = r.json()
        events = recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] == "completed")
    seqs = [e["seq"] for e in events if e["job_id"] == job["id"]]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs), seqs
    assert {e["type"] for e in events} >= {"export.progress", "export.completed"}
    assert all(0 <= e["progress"] <= 100 for e in events)
    download = alice.http.get(f"/api/exports/{job['id']}/download")
    assert download.status_code == 200
    assert download.headers["content-disposition"].startswith("attachment; filename=")
    assert "/" not in download.headers["content-disposition"].split("filename=")[1]
    coco = _coco_from_zip(download.content, tmp_path)
    project = alice.http.get(f"/api/projects/{live.project_id}").json()
    assert len(coco.getImgIds()) == len(project["images"])
    assert len(coco.getAnnIds()) == project["object_count"]
    assert alice.job(job["id"])["delivered"] is True
    assert str(live.data_dir) not in json.dumps(alice.job(job["id"]))


def test_the_download_name_keeps_the_project_name_s_letters(live: Live):
    """RFC 6266: an ASCII ``filename`` for old clients, and ``filename*`` (RFC 5987, UTF-8)
    with the letters of the project's name; never a path separator in either."""
    from urllib.parse import unquote

    live.app.state.db.execute("UPDATE projects SET name = ? WHERE id = ?", ('Zellkerne "µ/..\\évil', live.project_id))
    alice = live.new_user()
    job = alice.start({"annotation_formats": ["coco"]}).json()
    for _ in range(600):
        if alice.job(job["id"])["status"] == "completed":
            break
        time.sleep(0.05)
    header = alice.http.get(f"/api/exports/{job['id']}/download").headers["content-disposition"]
    ascii_part, _, utf8_part = header.partition("; filename*=UTF-8''")
    assert ascii_part == f'attachment; filename="Zellkerne_.._vil_export_{job["id"]}.zip"', header
    assert unquote(utf8_part) == f"Zellkerne_µ_.._évil_export_{job['id']}.zip", header


def test_second_start_answers_409_with_the_active_job(live: Live):
    live.app.state.hooks.delay_per_checkpoint_ms = 20
    alice = live.new_user()
    first = alice.start()
    assert first.status_code == 202
    second = alice.start()
    assert second.status_code == 409
    assert second.json()["job"]["id"] == first.json()["id"]
    alice.http.post(f"/api/exports/{first.json()['id']}/cancel")


def test_a_repeated_start_token_gets_the_job_its_first_request_made(live: Live):
    """R1 with ``start_token``: a start whose answer was lost is sent again with the same
    token; it gets the job the first copy made, even once that job is over (where a plain
    repeat would start a second export), and the token is kept on the job and its events."""
    alice = live.new_user()
    with alice.websocket() as ws:
        first = alice.http.post(f"/api/projects/{live.project_id}/exports?start_token=tab-a.1", json={})
        assert first.status_code == 202, first.text
        job = first.json()
        assert job["start_token"] == "tab-a.1"
        events = recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] == "completed")
    assert {e["start_token"] for e in events if e["job_id"] == job["id"]} == {"tab-a.1"}
    again = alice.http.post(f"/api/projects/{live.project_id}/exports?start_token=tab-a.1", json={})
    assert again.status_code == 202 and again.json()["id"] == job["id"] and again.json()["status"] == "completed"
    assert len(live.app.state.db.all("SELECT id FROM jobs")) == 1
    other = alice.http.post(f"/api/projects/{live.project_id}/exports?start_token=tab-a.2", json={})
    assert other.status_code == 202 and other.json()["id"] != job["id"]
    alice.http.post(f"/api/exports/{other.json()['id']}/cancel")


def test_start_tokens_are_checked_and_belong_to_their_user(live: Live):
    alice, bob = live.new_user(), live.new_user()
    bad = alice.http.post(f"/api/projects/{live.project_id}/exports?start_token=a%20b", json={})
    assert bad.status_code == 422 and bad.json()["detail"][0]["field"] == "start_token"
    too_long = alice.http.post(f"/api/projects/{live.project_id}/exports?start_token={'x' * 65}", json={})
    assert too_long.status_code == 422
    mine = alice.http.post(f"/api/projects/{live.project_id}/exports?start_token=same", json={})
    theirs = bob.http.post(f"/api/projects/{live.project_id}/exports?start_token=same", json={})
    assert mine.status_code == theirs.status_code == 202
    assert mine.json()["id"] != theirs.json()["id"]  # a token names a start of one user only
    for user, r in ((alice, mine), (bob, theirs)):
        user.http.post(f"/api/exports/{r.json()['id']}/cancel")


def test_two_simultaneous_starts_create_one_job(live: Live):
    live.app.state.hooks.delay_per_checkpoint_ms = 20
    alice = live.new_user()
    results: list = []
    barrier = threading.Barrier(4)

    def go():
        barrier.wait()
        results.append(alice.start())

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    codes = sorted(r.status_code for r in results)
    assert codes == [202, 409, 409, 409]
    ids = {r.json()["id"] if r.status_code == 202 else r.json()["job"]["id"] for r in results}
    assert len(ids) == 1
    rows = live.app.state.db.all("SELECT id FROM jobs")
    assert len(rows) == 1
    alice.http.post(f"/api/exports/{ids.pop()}/cancel")


def test_cancel_while_running_stops_the_worker_and_leaves_no_file(live: Live):
    live.app.state.hooks.delay_per_checkpoint_ms = 30
    alice = live.new_user()
    with alice.websocket() as ws:
        job = alice.start().json()
        recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] == "running")
        r = alice.http.post(f"/api/exports/{job['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] == "cancelled")
    time.sleep(0.3)  # give the worker time to reach its checkpoint; it must not resurrect the job
    assert alice.job(job["id"])["status"] == "cancelled"
    assert list((live.data_dir / "exports").iterdir()) == []
    assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 410
    again = alice.http.post(f"/api/exports/{job['id']}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"


def test_cancel_arriving_while_the_worker_completes_wins(live: Live):
    hooks = live.app.state.hooks
    hooks.hold_before_complete = True
    alice = live.new_user()
    job = alice.start().json()
    deadline = time.monotonic() + 30
    while not hooks.is_held(job["id"]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert alice.http.post(f"/api/exports/{job['id']}/cancel").status_code == 200
    hooks.release(job["id"])
    time.sleep(0.3)
    final = alice.job(job["id"])
    assert final["status"] == "cancelled"
    assert list((live.data_dir / "exports").iterdir()) == []


def test_cancel_after_completion_before_download_deletes_the_archive(live: Live):
    alice = live.new_user()
    job = alice.start().json()
    alice.wait_status(job["id"], {"completed"})
    assert (live.data_dir / "exports" / f"{job['id']}.1.zip").exists()
    r = alice.http.post(f"/api/exports/{job['id']}/cancel")
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    assert not (live.data_dir / "exports" / f"{job['id']}.1.zip").exists()
    assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 410


def test_cancel_after_download_is_409_already_downloaded(live: Live):
    alice = live.new_user()
    job = alice.start().json()
    alice.wait_status(job["id"], {"completed"})
    assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 200
    r = alice.http.post(f"/api/exports/{job['id']}/cancel")
    assert r.status_code == 409
    assert r.json()["detail"] == "already downloaded"
    assert alice.job(job["id"])["status"] == "completed"


def test_delivered_is_recorded_when_the_archive_starts_to_flow_and_a_cancel_then_is_409(live: Live):
    """R4 refined (server/DECISIONS.md): "delivered" = the server has started sending the
    archive (recorded before its first byte). A cancel after that answers 409 "already
    downloaded" and the transfer goes on to the last byte; the other end, a cancel that
    reaches the server before the download request, is the test above (410, no file)."""
    alice = live.new_user()
    job = alice.start().json()
    alice.wait_status(job["id"], {"completed"})
    assert alice.job(job["id"])["delivered"] is False
    with alice.http.stream("GET", f"/api/exports/{job['id']}/download") as download:
        assert download.status_code == 200  # headers only: no byte of the body read yet
        assert alice.job(job["id"])["delivered"] is True
        cancel = alice.http.post(f"/api/exports/{job['id']}/cancel")
        assert cancel.status_code == 409 and cancel.json()["detail"] == "already downloaded"
        body = download.read()
    assert len(body) == int(download.headers["content-length"])
    assert zipfile.ZipFile(io.BytesIO(body)).testzip() is None
    assert alice.job(job["id"])["status"] == "completed"


def test_a_download_refused_by_the_test_hook_leaves_the_job_undelivered(live: Live):
    """The e2e suite's stand-in for a server that went down as the browser asked for the
    file: the request is counted, answered 503, and the job stays undelivered (C9)."""
    import httpx

    alice = live.new_user()
    job = alice.start().json()
    alice.wait_status(job["id"], {"completed"})
    hooks = live.base_url + "/api/test/downloads"
    assert httpx.post(hooks, json={"refuse": True}).json() == {"refuse": True}
    try:
        assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 503
        assert alice.job(job["id"])["delivered"] is False
        state = httpx.get(f"{live.base_url}/api/test/jobs/{job['id']}").json()
        assert state["download_requests"] == 1 and state["downloads_served"] == 0
    finally:
        httpx.post(live.base_url + "/api/test/reset")
    assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 200
    assert alice.job(job["id"])["delivered"] is True


def test_download_rules_r4(live: Live):
    live.app.state.hooks.delay_per_checkpoint_ms = 20
    alice, bob = live.new_user(), live.new_user()
    job = alice.start().json()
    assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 409  # running
    assert bob.http.get(f"/api/exports/{job['id']}/download").status_code == 404  # not bob's
    assert bob.http.get(f"/api/exports/{job['id']}").status_code == 404
    assert bob.http.post(f"/api/exports/{job['id']}/cancel").status_code == 404
    assert alice.http.get("/api/exports/doesnotexist/download").status_code == 404
    live.app.state.hooks.delay_per_checkpoint_ms = 0
    alice.wait_status(job["id"], {"completed"})
    assert bob.http.get(f"/api/exports/{job['id']}/download").status_code == 404
    assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 200


@pytest.mark.parametrize(
    "options, field",
    [
        ({"pixel_size_um": 0}, "pixel_size_um"),
        ({"pixel_size_um": 5000}, "pixel_size_um"),
        ({"annotation_formats": ["pascal"]}, "annotation_formats.0"),
        ({"image_ids": []}, "image_ids"),
        ({"image_ids": [999999]}, "image_ids"),
        ({"visualization": {"outline_color": "green"}}, "visualization.outline_color"),
        ({"bogus": 1}, "bogus"),
        ({"annotation_formats": [], "metrics_formats": []}, "options"),
    ],
)
def test_bad_options_answer_422_naming_the_field_and_change_nothing(live: Live, options, field):
    alice = live.new_user()
    r = alice.start(options)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert any(d["field"] == field and d["reason"] for d in detail), detail
    assert live.app.state.db.all("SELECT id FROM jobs") == []


def test_unknown_image_ids_are_named_but_a_long_list_is_cut_short(live: Live):
    alice = live.new_user()
    r = alice.start({"image_ids": list(range(10**9, 10**9 + 80_000))})  # ~0.9 MiB: under the body bound
    assert r.status_code == 422
    assert len(r.content) < 2000, len(r.content)  # the answer does not echo 80,000 ids
    (detail,) = r.json()["detail"]
    assert detail["field"] == "image_ids"
    assert detail["reason"].startswith("not images of this project: [1000000000, 1000000001,")
    assert detail["reason"].endswith("and 79990 more")


def test_an_image_listed_twice_is_kept_once_on_the_job(live: Live):
    alice = live.new_user()
    ids = [im["id"] for im in alice.http.get(f"/api/projects/{live.project_id}").json()["images"]][:2]
    r = alice.start({"image_ids": [ids[1], ids[0], ids[1]] * 1000})
    assert r.status_code == 202, r.text
    assert r.json()["options"]["image_ids"] == [ids[1], ids[0]]


@pytest.mark.parametrize("value", ["NaN", "Infinity"])
def test_a_nan_or_infinite_pixel_size_is_named_as_such(live: Live, value):
    r = live.new_user().http.post(f"/api/projects/{live.project_id}/exports",
                                  content='{"pixel_size_um": %s}' % value, headers={"Content-Type": "application/json"})
    assert r.status_code == 422, r.text
    assert any(d["field"] == "pixel_size_um" and "finite" in d["reason"] for d in r.json()["detail"]), r.json()


@pytest.mark.parametrize("path", [
    "/api/projects/{big}", "/api/projects/{big}/exports", "/api/projects/{big}/images/1/thumbnail",
    "/api/projects/{pid}/images/{big}/thumbnail", "/api/projects/-{big}",
])
def test_an_id_too_big_for_sqlite_is_a_clear_error_not_a_500(live: Live, path):
    alice = live.new_user()
    url = path.format(big=2**63, pid=live.project_id)
    for r in (alice.http.get(url), alice.http.post(url, json={}) if url.endswith("/exports") else None):
        if r is not None:
            assert r.status_code in (404, 422), (url, r.status_code, r.text)
            assert r.json()["detail"], r.text


def test_requests_need_a_session_and_state_changes_need_the_csrf_header(live: Live):
    import httpx

    anon = httpx.Client(base_url=live.base_url)
    assert anon.get("/api/projects").status_code == 401
    alice = live.new_user()
    forged = httpx.Client(base_url=live.base_url, cookies=alice.http.cookies)
    assert forged.get("/api/projects").status_code == 200
    assert forged.post(f"/api/projects/{live.project_id}/exports", json={}).status_code == 403
    cross = alice.http.post(
        f"/api/projects/{live.project_id}/exports", json={}, headers={"Origin": "http://evil.example"}
    )
    assert cross.status_code == 403
    assert live.app.state.db.all("SELECT id FROM jobs") == []


def test_a_running_job_is_run_again_after_a_restart(tmp_path):
    data = tmp_path / "data"
    first = start_live(data)
    first.app.state.hooks.hold_before_complete = True
    alice = first.new_user()
    job = alice.start().json()
    deadline = time.monotonic() + 30
    while not first.app.state.hooks.is_held(job["id"]):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    # The server stops while the job runs: the worker leaves, the row still says running.
    first.stop()
    assert first.app.state.db.one("SELECT status FROM jobs WHERE id = ?", (job["id"],))["status"] == "running"
    second = start_live(data)
    try:
        row = second.app.state.db.one("SELECT status FROM jobs WHERE id = ?", (job["id"],))
        deadline = time.monotonic() + 30
        while row["status"] in ("queued", "running") and time.monotonic() < deadline:
            time.sleep(0.05)
            row = second.app.state.db.one("SELECT status FROM jobs WHERE id = ?", (job["id"],))
        assert row["status"] == "completed"
    finally:
        second.stop()


def test_history_lists_the_last_exports_with_downloadability(live: Live):
    alice = live.new_user()
    done = alice.start().json()
    alice.wait_status(done["id"], {"completed"})
    live.app.state.hooks.delay_per_checkpoint_ms = 30
    cancelled = alice.start().json()
    alice.http.post(f"/api/exports/{cancelled['id']}/cancel")
    history = alice.http.get(f"/api/projects/{live.project_id}/exports").json()
    assert [h["id"] for h in history] == [cancelled["id"], done["id"]]
    by_id = {h["id"]: h for h in history}
    assert by_id[done["id"]]["downloadable"] is True and by_id[done["id"]]["size_bytes"] > 0
    assert by_id[cancelled["id"]]["downloadable"] is False
    assert by_id[cancelled["id"]]["status"] == "cancelled"
    bob = live.new_user()
    assert bob.http.get(f"/api/projects/{live.project_id}/exports").json() == []


def test_history_keeps_only_the_last_20(live: Live):
    alice = live.new_user()
    ids = []
    for _ in range(22):
        live.app.state.hooks.delay_per_checkpoint_ms = 50
        job = alice.start().json()
        ids.append(job["id"])
        assert alice.http.post(f"/api/exports/{job['id']}/cancel").status_code == 200
    history = alice.http.get(f"/api/projects/{live.project_id}/exports").json()
    assert [h["id"] for h in history] == list(reversed(ids))[:20]


def test_archives_expire_after_the_ttl(tmp_path):
    srv = start_live(tmp_path / "data", archive_ttl_seconds=1.0)
    try:
        alice = srv.new_user()
        job = alice.start().json()
        alice.wait_status(job["id"], {"completed"})
        final = alice.wait_status(job["id"], {"expired"}, timeout=30)
        assert final["status"] == "expired"
        assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 410  # by status at once
        # The expiry pass marks the row first, then deletes the file: poll for the file (a CI
        # run once looked in between).
        archive = srv.data_dir / "exports" / f"{job['id']}.1.zip"
        deadline = time.monotonic() + 10
        while archive.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert not archive.exists()
        assert alice.http.get(f"/api/exports/{job['id']}/download").status_code == 410
    finally:
        srv.stop()


def test_a_write_error_ends_the_job_failed_with_a_clear_message_and_no_file(live: Live):
    import errno

    def disk_full(job, dest, checkpoint):
        with open(dest, "wb") as out:
            out.write(b"partial")
        checkpoint("annotations", 0.1, "writing")
        raise OSError(errno.ENOSPC, "No space left on device")

    live.app.state.runner.build = disk_full  # fault injection: the disk fills up mid-write
    alice = live.new_user()
    job = alice.start().json()
    final = alice.wait_status(job["id"], {"failed"})
    assert "disk is full" in final["message"]
    assert list((live.data_dir / "exports").iterdir()) == []
    assert str(live.data_dir) not in final["message"]


def test_a_reconnecting_client_first_gets_its_active_jobs(live: Live):
    """The snapshot of an active job is the job's own event (``ExportEvent.from_job``): every
    field an event carries, the start token included (a tab that clicked cancel before its
    202 names the job by it)."""
    from app.models import ExportEvent

    live.app.state.hooks.delay_per_checkpoint_ms = 40
    alice, bob = live.new_user(), live.new_user()
    job = alice.http.post(f"/api/projects/{live.project_id}/exports?start_token=snap.1", json={}).json()
    alice.wait_status(job["id"], {"running"})
    with alice.websocket() as ws:
        first = recv_events(ws, lambda e: True)[0]
        assert first["job_id"] == job["id"] and first["status"] in ("queued", "running")
        assert first["start_token"] == "snap.1"
        assert set(first) == set(ExportEvent.model_fields)
    with bob.websocket() as ws:
        # Bob owns no job: his first message is nothing of Alice's (we see only a ping or nothing).
        try:
            msg = json.loads(ws.recv(timeout=0.5))
            assert msg.get("job_id") != job["id"]
        except TimeoutError:
            pass
    alice.http.post(f"/api/exports/{job['id']}/cancel")


def test_events_reach_every_connection_of_the_owner_and_only_the_owner(live: Live):
    alice, bob = live.new_user(), live.new_user()
    with alice.websocket() as a1, alice.websocket() as a2, bob.websocket() as b:
        job = alice.start().json()
        for ws in (a1, a2):
            recv_events(ws, lambda e: e["job_id"] == job["id"] and e["status"] == "completed")
        with pytest.raises(TimeoutError):
            b.recv(timeout=0.3)


def test_the_websocket_needs_a_session(live: Live):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    with pytest.raises(InvalidStatus) as refused:
        connect(live.base_url.replace("http://", "ws://") + "/api/ws", open_timeout=5)
    assert refused.value.response.status_code == 403


def test_heartbeat_pings_arrive(live: Live, monkeypatch):
    import server.routes.ws as ws_route

    monkeypatch.setattr(ws_route, "HEARTBEAT_SECONDS", 0.1)
    alice = live.new_user()
    with alice.websocket() as ws:
        msg = json.loads(ws.recv(timeout=5))
        assert msg["type"] == "ping"
