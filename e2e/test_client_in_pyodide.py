"""The Python client in Pyodide (issue 21): a PyScript worker installs the client's wheel and
its dependencies (pyodide-http, requests, ...) from this server's ``/static/wheels/client/``,
as the README tells a notebook to, exports the demo project through pyodide-http, downloads
and verifies the archive, and its SHA-256 computed inside Pyodide is the server's."""
from __future__ import annotations

import json

from e2e.conftest import job_state


def test_a_pyscript_worker_exports_with_the_client_from_the_hubs_own_wheels(user, server):
    status, made = user.api("POST", "/api/tokens", {"name": "pyodide worker"})
    assert status == 201, made
    status, projects = user.api("GET", "/api/projects")
    project_id = projects[0]["id"]
    tab = user.start_tab(f"/test-pages/test/client_worker.html#token={made['token']}&project={project_id}")
    tab.page.wait_for_selector("body[data-ready]", state="attached", timeout=180_000)
    assert tab.page.locator("body").get_attribute("data-ready") == "true", tab.page.locator("#error").inner_text()
    report = json.loads(tab.page.locator("#result").inner_text())

    assert report["platform"] == "emscripten" and report["python"].startswith("3.14")
    assert report["pyodide_http_patched"] is True and report["slept_without_spinning"] is True
    state = job_state(server, report["job_id"])
    assert state["status"] == "completed" and state["delivered"] is True
    assert report["sha256_here"] == report["sha256_client"] == report["sha256_job"] == state["sha256"]
    assert "yolo/data.yaml" in report["members"] and "metrics/metrics.csv" in report["members"]
    phases = [phase for phase, _ in report["updates"]]
    export_percents = [p for phase, p in report["updates"] if phase == "export"]
    assert phases[-1] == "download" and report["updates"][-1][1] == 100.0
    assert export_percents == sorted(export_percents) and export_percents[-1] == 100.0
    fetched = [url for url in tab.requests if "/static/wheels/" in url]
    for wheel in ("client/cellhub_client-", "client/pyodide_http-", "client/requests-", "client/urllib3-",
                  "pydantic_core-"):
        assert any(f"/static/wheels/{wheel}" in url for url in fetched), (wheel, fetched)
