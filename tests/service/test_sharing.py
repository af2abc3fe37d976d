"""Private projects, sharing with roles, and the 404 rule (R9), against the real server."""
from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import Client, Live
from testkit.api_session import recv_events

UNKNOWN = 987654321


def _routes(project_id: int, member: str = "nobody") -> list[tuple[str, str, dict | None]]:
    """Every route that names a project: (method, path, JSON body)."""
    base = f"/api/projects/{project_id}"
    return [
        ("GET", base, None),
        ("PATCH", base, {"name": "mine now"}),
        ("DELETE", base, None),
        ("GET", f"{base}/images/1/thumbnail", None),
        ("POST", f"{base}/exports", {}),
        ("GET", f"{base}/exports", None),
        ("GET", f"{base}/members", None),
        ("POST", f"{base}/members", {"username": member, "role": "viewer"}),
        ("DELETE", f"{base}/members/{member}", None),
    ]


def _call(client: Client, method: str, path: str, body: dict | None) -> httpx.Response:
    return client.http.request(method, path, json=body) if body is not None else client.http.request(method, path)


def _assert_like_unknown(client: Client, project_id: int, member: str = "nobody") -> None:
    """Every route answers for ``project_id`` exactly as for a project that does not exist."""
    for (method, path, body), (_, unknown_path, _) in zip(_routes(project_id, member), _routes(UNKNOWN, member)):
        got, unknown = _call(client, method, path, body), _call(client, method, unknown_path, body)
        assert got.status_code == unknown.status_code == 404, (method, path, got.status_code, got.text)
        assert got.json()["detail"].replace(str(project_id), "ID") == unknown.json()["detail"].replace(str(UNKNOWN), "ID")
    page = client.http.get(f"/?project={project_id}")
    assert page.status_code == 404 and "Private nuclei" not in page.text


def _share(owner: Client, project_id: int, who: Client, role: str = "viewer") -> httpx.Response:
    return owner.http.post(f"/api/projects/{project_id}/members", json={"username": who.username, "role": role})


def test_a_project_is_private_to_its_owner_on_every_route(live: Live):
    alice, bob = live.new_user(), live.new_user()
    project_id = live.add_project(alice)
    assert project_id in [p["id"] for p in alice.http.get("/api/projects").json()]
    listed = {p["id"]: p for p in bob.http.get("/api/projects").json()}
    assert project_id not in listed
    assert listed[live.project_id]["access"] == "public"  # the demo is there for everyone
    _assert_like_unknown(bob, project_id, member=alice.username)
    # and nothing changed: alice's project is still hers, unrenamed
    mine = alice.http.get(f"/api/projects/{project_id}").json()
    assert (mine["name"], mine["owner"], mine["access"], mine["public"]) == ("Private nuclei", alice.username, "owner", False)


def test_the_no_such_project_page_lists_only_what_the_user_may_see(live: Live):
    alice, bob = live.new_user(), live.new_user()
    live.add_project(alice, name="Alice's secret")
    page = bob.http.get(f"/?project={UNKNOWN}")
    assert page.status_code == 404
    assert "Alice&#x27;s secret" not in page.text and "Alice's secret" not in page.text
    assert "Demo: synthetic nuclei" in page.text


def test_a_viewer_sees_exports_and_downloads_but_cannot_change_or_share(live: Live):
    alice, bob, carol = live.new_user(), live.new_user(), live.new_user()
    project_id = live.add_project(alice)
    assert _share(alice, project_id, bob).status_code == 201
    assert _share(alice, project_id, bob).status_code == 200  # the same again: no change, no error
    entry = next(p for p in bob.http.get("/api/projects").json() if p["id"] == project_id)
    assert (entry["owner"], entry["access"]) == (alice.username, "viewer")
    assert bob.http.get(f"/api/projects/{project_id}/images/1/thumbnail").status_code in (200, 404)
    image_id = bob.http.get(f"/api/projects/{project_id}").json()["images"][0]["id"]
    assert bob.http.get(f"/api/projects/{project_id}/images/{image_id}/thumbnail").status_code == 200
    job = bob.start(project_id=project_id).json()
    bob.wait_status(job["id"], {"completed"})
    assert bob.http.get(f"/api/exports/{job['id']}/download").status_code == 200
    assert alice.http.get(f"/api/exports/{job['id']}").status_code == 404  # bob's export is his alone
    assert bob.http.get(f"/api/projects/{project_id}/members").json() == [
        {"username": alice.username, "role": "owner"}, {"username": bob.username, "role": "viewer"}]
    refused = [bob.http.patch(f"/api/projects/{project_id}", json={"name": "x"}),
               bob.http.post(f"/api/projects/{project_id}/members", json={"username": carol.username}),
               bob.http.delete(f"/api/projects/{project_id}")]
    assert [r.status_code for r in refused] == [403, 403, 403]
    assert "owner and editors" in refused[0].json()["detail"]
    assert alice.http.get(f"/api/projects/{project_id}").json()["name"] == "Private nuclei"


def test_an_editor_renames_and_shares_but_the_owner_stays(live: Live):
    alice, bob, carol = live.new_user(), live.new_user(), live.new_user()
    project_id = live.add_project(alice)
    _share(alice, project_id, bob, "editor")
    renamed = bob.http.patch(f"/api/projects/{project_id}", json={"name": "  Renamed  ", "description": "d"})
    assert renamed.status_code == 200 and renamed.json()["name"] == "Renamed"
    assert _share(bob, project_id, carol).status_code == 201
    assert carol.http.get(f"/api/projects/{project_id}").json()["access"] == "viewer"
    owner = bob.http.post(f"/api/projects/{project_id}/members", json={"username": alice.username, "role": "viewer"})
    assert owner.status_code == 422 and owner.json()["detail"] == [
        {"field": "username", "reason": f"{alice.username} owns this project"}]
    assert bob.http.delete(f"/api/projects/{project_id}/members/{alice.username}").status_code == 404


@pytest.mark.parametrize("body, field", [
    ({"username": "no-such-user-here", "role": "viewer"}, "username"),
    ({"username": "{bob}", "role": "owner"}, "role"),
    ({"username": "{bob}", "role": "viewer", "extra": 1}, "extra"),
    ({"role": "viewer"}, "username"),
])
def test_bad_share_requests_are_422_naming_the_field_and_change_nothing(live: Live, body, field):
    alice, bob = live.new_user(), live.new_user()
    project_id = live.add_project(alice)
    body = {k: (v.replace("{bob}", bob.username) if isinstance(v, str) else v) for k, v in body.items()}
    r = alice.http.post(f"/api/projects/{project_id}/members", json=body)
    assert r.status_code == 422 and [p["field"] for p in r.json()["detail"]] == [field], r.text
    assert [m["role"] for m in alice.http.get(f"/api/projects/{project_id}/members").json()] == ["owner"]


@pytest.mark.parametrize("body, field", [({"name": "   "}, "name"), ({"name": "x" * 201}, "name"),
                                         ({}, "options"), ({"owner": "me"}, "owner"), ({"public": "perhaps"}, "public")])
def test_bad_project_changes_are_422_naming_the_field(live: Live, body, field):
    alice = live.new_user()
    project_id = live.add_project(alice)
    r = alice.http.patch(f"/api/projects/{project_id}", json=body)
    assert r.status_code == 422 and [p["field"] for p in r.json()["detail"]] == [field], r.text
    assert alice.http.get(f"/api/projects/{project_id}").json()["name"] == "Private nuclei"


def test_revoking_cancels_the_members_running_export_and_hides_everything_of_it(live: Live):
    alice, bob = live.new_user(), live.new_user()
    project_id = live.add_project(alice, images=2)
    _share(alice, project_id, bob)
    done = bob.start(project_id=project_id).json()
    bob.wait_status(done["id"], {"completed"})
    live.app.state.hooks.delay_per_checkpoint_ms = 200
    with bob.websocket() as ws:
        running = bob.start(project_id=project_id).json()
        bob.wait_status(running["id"], {"running"})
        assert alice.http.delete(f"/api/projects/{project_id}/members/{bob.username}").status_code == 200
        events = recv_events(ws, lambda m: m.get("type") == "project.gone")
    assert any(e.get("job_id") == running["id"] and e["status"] == "cancelled" for e in events)
    assert events[-1]["project_id"] == project_id
    store = live.app.state.store
    assert store.get(running["id"]).status == "cancelled"
    deadline = time.monotonic() + 20
    while store.partial_path(running["id"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    for job_id in (done["id"], running["id"]):
        assert not store.archive_path(job_id).exists() and not store.partial_path(job_id).exists()
        for method, suffix in (("GET", ""), ("POST", "/cancel"), ("GET", "/download"), ("DELETE", "")):
            assert bob.http.request(method, f"/api/exports/{job_id}{suffix}").status_code == 404
    _assert_like_unknown(bob, project_id, member=alice.username)
    with bob.websocket() as ws:  # a reconnect's snapshot names nothing of the project
        live.app.state.hooks.delay_per_checkpoint_ms = 0
        mine = bob.start().json()
        got = recv_events(ws, lambda m: m.get("job_id") == mine["id"])
    assert all(m.get("project_id") != project_id for m in got)


def test_a_member_may_leave_and_a_public_project_stays_visible_after_removal(live: Live):
    alice, bob = live.new_user(), live.new_user()
    project_id = live.add_project(alice, public=True)
    _share(alice, project_id, bob, "editor")
    assert bob.http.delete(f"/api/projects/{project_id}/members/{bob.username}").status_code == 200
    entry = next(p for p in bob.http.get("/api/projects").json() if p["id"] == project_id)
    assert entry["access"] == "public"
    assert bob.http.get(f"/api/projects/{project_id}/members").status_code == 403


def test_making_a_project_private_withdraws_it_from_its_public_readers(live: Live):
    alice, bob = live.new_user(), live.new_user()
    project_id = live.add_project(alice, public=True)
    live.app.state.hooks.delay_per_checkpoint_ms = 200
    job = bob.start(project_id=project_id).json()
    bob.wait_status(job["id"], {"running"})
    assert alice.http.patch(f"/api/projects/{project_id}", json={"public": False}).json()["public"] is False
    assert live.app.state.store.get(job["id"]).status == "cancelled"
    _assert_like_unknown(bob, project_id, member=alice.username)


def test_deleting_a_project_cancels_its_exports_and_removes_every_file(live: Live):
    alice, bob = live.new_user(), live.new_user()
    project_id = live.add_project(alice, images=2)
    _share(alice, project_id, bob)
    image_id = alice.http.get(f"/api/projects/{project_id}").json()["images"][0]["id"]
    assert alice.http.get(f"/api/projects/{project_id}/images/{image_id}/thumbnail").status_code == 200
    finished = alice.start(project_id=project_id).json()
    alice.wait_status(finished["id"], {"completed"})
    live.app.state.hooks.delay_per_checkpoint_ms = 200
    running = bob.start(project_id=project_id).json()
    bob.wait_status(running["id"], {"running"})
    db, store = live.app.state.db, live.app.state.store
    folders = {r["rel_path"].split("/")[0] for r in db.all("SELECT rel_path FROM images WHERE project_id = ?", (project_id,))}
    with bob.websocket() as ws:
        assert bob.http.delete(f"/api/projects/{project_id}").status_code == 403
        assert alice.http.delete(f"/api/projects/{project_id}").json() == {"deleted": project_id}
        events = recv_events(ws, lambda m: m.get("type") == "project.gone")
    assert any(e.get("job_id") == running["id"] and e["status"] == "cancelled" for e in events)
    assert db.all("SELECT id FROM images WHERE project_id = ?", (project_id,)) == []
    assert db.all("SELECT id FROM jobs WHERE project_id = ?", (project_id,)) == []
    assert not any((live.data_dir / "files" / folder).exists() for folder in folders)
    assert not (live.data_dir / "thumbnails" / f"{image_id}.png").exists()
    assert not store.archive_path(finished["id"]).exists()
    deadline = time.monotonic() + 20
    while store.partial_path(running["id"]).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not store.partial_path(running["id"]).exists()
    for who in (alice, bob):
        assert who.http.get(f"/api/projects/{project_id}").status_code == 404
        assert project_id not in [p["id"] for p in who.http.get("/api/projects").json()]


def test_the_demo_project_is_public_and_belongs_to_the_first_user(live: Live):
    alice = live.new_user()
    demo = next(p for p in alice.http.get("/api/projects").json() if p["id"] == live.project_id)
    assert (demo["public"], demo["owner"], demo["access"]) == (True, "local", "public")
    assert alice.http.patch(f"/api/projects/{live.project_id}", json={"name": "mine"}).status_code == 403


def test_an_uploaded_project_belongs_to_the_uploader(live: Live):
    alice, bob = live.new_user(), live.new_user()
    data = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "cells" / "stardist_dsb2018" / "tests" / "data"
    image, mask = data / "img2d.tif", data / "mask2d.tif"  # the real StarDist pair of the shared data
    r = alice.http.post("/api/projects/import", data={"format": "labels", "name": "Mine"},
                        files=[("images", ("img2d.tif", image.read_bytes())), ("masks", ("img2d.tif", mask.read_bytes()))])
    assert r.status_code == 201, r.text
    project_id = r.json()["project_id"]
    assert alice.http.get(f"/api/projects/{project_id}").json()["access"] == "owner"
    assert bob.http.get(f"/api/projects/{project_id}").status_code == 404
