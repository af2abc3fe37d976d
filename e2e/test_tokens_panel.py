"""The page's "API tokens" panel (issue 21): a token is made with a name and a lifetime, its
secret shown once (gone after a reload), listed without it, usable as a bearer token, and
revoked from the list (401 from then on)."""
from __future__ import annotations

import httpx
from playwright.sync_api import expect


def test_make_use_and_revoke_a_token_from_the_page(user, server):
    tab = user.open_tab("/")
    page = tab.page
    expect(page.locator("#tokens-empty")).to_have_text("No API tokens yet.")
    page.click("#token-create")
    expect(page.locator("#token-error")).to_contain_text("name")  # refused before sending
    assert not any(m == "POST" and u.endswith("/api/tokens") for m, u in tab.sent)
    page.fill("#token-name", "analysis notebook")
    page.select_option("#token-expiry", "7")
    page.click("#token-create")
    expect(page.locator("#token-fresh")).to_be_visible()
    secret = page.input_value("#token-secret")
    assert secret.startswith("chub_")
    item = page.locator(".token-item")
    expect(item).to_have_count(1)
    expect(item).to_contain_text("analysis notebook")
    expect(item).to_contain_text(f"{secret[:12]}… · created just now · expires in 7 days · never used")
    projects = httpx.get(server.base_url + "/api/projects", headers={"Authorization": f"Bearer {secret}"})
    assert projects.status_code == 200

    page.reload()
    page.wait_for_selector("body[data-ready='true']")
    expect(page.locator(".token-item")).to_contain_text("last used just now")
    assert secret not in page.content() and page.locator("#token-fresh").is_hidden()

    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".token-item button")
    expect(page.locator("#tokens-empty")).to_have_text("No API tokens yet.")
    expect(page.locator(".token-item")).to_have_count(0)
    refused = httpx.get(server.base_url + "/api/projects", headers={"Authorization": f"Bearer {secret}"})
    assert refused.status_code == 401 and refused.json()["detail"] == "this API token was revoked"
