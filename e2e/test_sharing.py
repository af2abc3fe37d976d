"""Two users in Chromium against the real server (R9): a private project, shared as viewer
through the Share panel (keyboard), exported by the viewer, then revoked while that export
runs: the export ends cancelled, nothing is downloaded, the page says the project is gone and
leads back to the user's projects. And what a user without any project sees."""
from __future__ import annotations

from playwright.sync_api import expect

from e2e.conftest import (ROOT, allow_console_errors, close_user_session, new_user_session, reset_hooks, set_hooks,
                          start_server, stop_server, wait_for_job)

DATA = ROOT.parent / "shared" / "data" / "cells" / "stardist_dsb2018" / "tests" / "data"


def _upload(session, name: str) -> int:
    """Alice's own project: the real StarDist image and its labels, uploaded as she would."""
    r = session.context.request.post(
        session.server.base_url + "/api/projects/import", headers={"X-Requested-With": "cellhub"},
        multipart={"format": "labels", "name": name,
                   "images": {"name": "img2d.tif", "mimeType": "image/tiff", "buffer": (DATA / "img2d.tif").read_bytes()},
                   "masks": {"name": "img2d.tif", "mimeType": "image/tiff", "buffer": (DATA / "mask2d.tif").read_bytes()}})
    assert r.status == 201, r.text()
    return int(r.json()["project_id"])


def _picker_values(tab) -> list[str]:
    return tab.page.eval_on_selector_all("#project-select option", "os => os.map(o => o.value)")


def test_share_export_and_revoke_between_two_users(server, browser):
    alice, bob = new_user_session(server, browser), new_user_session(server, browser)
    try:
        project_id = _upload(alice, "Alice's nuclei")

        # Bob cannot see it: not in his picker, and its URL is the page for an unknown project.
        bob_tab = bob.open_tab("/")
        # The 404s Bob meets (the project's URL, then his page's requests once it is gone) and
        # the 422 of Alice's mistyped name are answers the test asks for.
        allow_console_errors([bob_tab], r"status of 404 \(Not Found\)")
        expect(bob_tab.page.locator("#project-select")).to_be_enabled()
        assert str(project_id) not in _picker_values(bob_tab)
        answer = bob_tab.page.goto(f"{server.base_url}/?project={project_id}")
        assert answer.status == 404 and "Alice's nuclei" not in bob_tab.page.content()

        # Alice shares it with Bob as a viewer, from the keyboard; a wrong name is refused in place.
        alice_tab = alice.open_tab(f"/?project={project_id}")
        allow_console_errors([alice_tab], r"status of 422 \(Unprocessable (Entity|Content)\)")
        page = alice_tab.page
        page.locator("#share-summary").focus()
        page.keyboard.press("Enter")
        expect(page.locator("#share-username")).to_be_visible()
        page.locator("#share-username").focus()
        page.keyboard.type("no-such-user")
        page.keyboard.press("Enter")
        expect(page.locator("#share-error")).to_contain_text("there is no user named 'no-such-user'")
        page.locator("#share-username").fill("")
        page.keyboard.type(bob.username)
        page.keyboard.press("Tab")  # to the role: viewer is the default
        expect(page.locator("#share-role")).to_be_focused()
        expect(page.locator("#share-role")).to_have_value("viewer")
        page.keyboard.press("Tab")
        expect(page.locator("#share-add")).to_be_focused()
        page.keyboard.press("Enter")
        expect(page.locator("#share-status")).to_have_text(f"{bob.username} is now viewer.")
        expect(page.locator("#share-error")).to_be_hidden()
        expect(page.locator(f"#share-members li[data-username='{bob.username}']")).to_be_visible()

        # Bob's picker now shows it as shared by Alice; he opens it and exports.
        bob_tab.page.goto(f"{server.base_url}/")
        expect(bob_tab.page.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
        shared = bob_tab.page.locator("#project-select optgroup[label='Shared with me'] option")
        expect(shared).to_have_count(1)
        expect(shared).to_have_text(f"Alice's nuclei · {alice.username}, viewer (1 image)")
        bob_tab.page.goto(f"{server.base_url}/?project={project_id}")
        expect(bob_tab.page.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
        expect(bob_tab.page.locator("#project-access")).to_contain_text(f"{alice.username}'s project")
        expect(bob_tab.page.locator("#share-panel")).to_have_count(0)
        set_hooks(server, delay_per_checkpoint_ms=400)
        bob_tab.page.click("#export-button")
        expect(bob_tab.page.locator("body")).to_have_attribute("data-status", "running", timeout=30_000)
        job_id = bob_tab.job_id()

        # Alice revokes while it runs.
        page.click(f"#share-members button[aria-label='Remove {bob.username}']")
        expect(page.locator("#share-status")).to_have_text(f"{bob.username} no longer has access.")
        state = wait_for_job(server, job_id, lambda s: s["status"] == "cancelled" and not s["partial_exists"])
        assert not state["archive_exists"] and state["download_requests"] == 0

        # Bob's page says so, downloads nothing, and leads him back to his projects.
        expect(bob_tab.page.locator("#project-gone")).to_be_visible(timeout=30_000)
        expect(bob_tab.page.locator("body")).to_have_attribute("data-status", "cancelled")
        assert bob_tab.downloads == []
        bob_tab.page.click("#project-gone-link")
        expect(bob_tab.page.locator("body")).to_have_attribute("data-ready", "true", timeout=60_000)
        assert str(project_id) not in _picker_values(bob_tab)
        status, _ = bob.api("GET", f"/api/exports/{job_id}")
        assert status == 404
    finally:
        reset_hooks(server)
        close_user_session(alice)
        close_user_session(bob)


def test_a_user_without_projects_is_shown_how_to_import_one(browser, tmp_path):
    """On a server of its own: the demo's owner (the run command's sign-in link) makes it
    private, and a new user's page says how to bring a project in."""
    srv = start_server(tmp_path / "data")
    owner = browser.new_context()
    try:
        owner.request.get(srv.login_url)  # the one-time link signs in the first user, the demo's owner
        projects = owner.request.get(srv.base_url + "/api/projects").json()
        r = owner.request.patch(f"{srv.base_url}/api/projects/{projects[0]['id']}", data={"public": False},
                                headers={"X-Requested-With": "cellhub"})
        assert r.ok and r.json()["public"] is False, r.text()
        newcomer = new_user_session(srv, browser)
        try:
            tab = newcomer.open_tab("/")
            expect(tab.page.locator("#no-projects h1")).to_have_text("You have no projects yet")
            expect(tab.page.locator("#no-projects")).to_contain_text("--owner YOUR_NAME")
            expect(tab.page.locator("#no-projects")).to_contain_text(f"{srv.base_url}/api/projects/import")
            status, listed = newcomer.api("GET", "/api/projects")
            assert (status, listed) == (200, [])
        finally:
            close_user_session(newcomer)
    finally:
        owner.close()
        stop_server(srv)
