# Runs in a PyScript worker (e2e/test_client_in_pyodide.py): installs the client the way the
# README tells a notebook to, from the hub's /static/wheels/client/, then exports a project
# with it (requests through pyodide-http: synchronous, fine in a worker) and reports, as
# JSON, what it did and the archive's SHA-256 computed here, in Pyodide.
import hashlib
import json
import sys

from pyscript import sync


async def export_project(hub, token, project_id):
    import pyodide_js, pyodide.http
    await pyodide_js.loadPackage([f"{hub}/static/wheels/{n}" for n in await (await pyodide.http.pyfetch(f"{hub}/static/wheels/client/wheels.json")).json()])
    from cellhub_client import Client

    updates = []
    client = Client(hub, token=token)
    result = client.export(project_id, {"annotation_formats": ["coco", "yolo"], "metrics_formats": ["csv"]},
                           "/tmp/export.zip", progress=lambda u: updates.append([u.phase, round(u.percent, 1)]))
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
