# Runs in a PyScript worker (e2e/test_client_in_pyodide.py): installs the client with the
# README's three lines for a notebook, from this hub's /static/wheels/client/, then exports a
# project with it when the page asks (requests through pyodide-http: synchronous XHR, fine in
# a worker) and reports, as JSON, what it did and the archive's SHA-256 computed here.
import hashlib
import json
import sys

import js
from pyscript import sync

import pyodide_js, pyodide.http; HUB = str(js.location.origin)
await pyodide_js.loadPackage([f"{HUB}/static/wheels/{n}" for n in await (await pyodide.http.pyfetch(f"{HUB}/static/wheels/client/wheels.json")).json()])
from cellhub_client import Client


def export_project(token, project_id):
    updates = []
    result = Client(HUB, token=token).export(
        int(project_id), {"annotation_formats": ["coco", "yolo"], "metrics_formats": ["csv"]}, "/tmp/export.zip",
        progress=lambda u: updates.append([u.phase, round(u.percent, 1)]))
    with open("/tmp/export.zip", "rb") as archive:
        digest = hashlib.sha256(archive.read()).hexdigest()
    import cellhub_client.platform as platform
    import pyodide_http

    return json.dumps({
        "python": sys.version.split()[0],
        "platform": sys.platform,
        "job_id": result.job.id,
        "sha256_here": digest,
        "sha256_client": result.sha256,
        "sha256_job": result.job.sha256,
        "size": result.size_bytes,
        "members": sorted(result.metadata["files"]),
        "updates": updates,
        "pyodide_http_patched": pyodide_http._requests._IS_PATCHED,
        "slept_without_spinning": platform._waiter is not None,
    })


sync.export_project = export_project
