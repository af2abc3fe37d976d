"""API fuzzing with schemathesis over the server's own ``/openapi.json`` (issue 16, item 10).

The product as the run command starts it (no test hooks), a signed-in user with the CSRF
header; every operation gets schema-conforming and schema-violating requests, bounded in
examples (``EXAMPLES`` per operation and mode) and time (pytest-timeout). Every answer must
be below 500 and hold no traceback and no server path, and every 4xx of the API (``/api/``)
must have the project's error shape: ``{"detail": "text"}`` or ``{"detail": [{"field",
"reason"}, ...]}`` (the pages, ``/``, ``/signin``, ``/login``, answer a page for the browser).
"""
from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode

from server import auth
from tests.service.conftest import start_live

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = 30
SKIPPED = {"DELETE /api/session"}  # signing out would end the fuzzing session itself
LEAKS = ("Traceback (most recent call last)", 'File "/', "site-packages", str(ROOT))


@pytest.fixture(scope="module")
def target(tmp_path_factory):
    srv = start_live(tmp_path_factory.mktemp("fuzz") / "data", test_hooks=False)
    auth.add_user(srv.app.state.db, "fuzzer", "fuzz-password")
    client = httpx.Client(base_url=srv.base_url, headers={"X-Requested-With": "cellhub"})
    assert client.post("/api/session", json={"username": "fuzzer", "password": "fuzz-password"}).status_code == 200
    raw = client.get("/openapi.json").json()
    yield srv, dict(client.cookies), schemathesis.openapi.from_dict(raw)
    srv.stop()


def problem_with(response, path: str, data_dir: Path) -> str | None:
    """Why the answer to a request of ``path`` breaks the rules of the module docstring, or None."""
    text = response.content.decode("utf-8", "replace")
    if response.status_code >= 500:
        return f"{response.status_code}: {text[:300]}"
    for leak in (*LEAKS, str(data_dir)):
        if leak in text:
            return f"the answer shows {leak!r}: {text[:300]}"
    if 400 <= response.status_code < 500 and path.startswith("/api/"):
        try:
            body = json.loads(text)
        except ValueError:
            return f"{response.status_code} without a JSON body: {text[:200]!r}"
        detail = body.get("detail") if isinstance(body, dict) else None
        good = (isinstance(detail, str) and detail) or (
            isinstance(detail, list) and detail and all(
                isinstance(d, dict) and isinstance(d.get("field"), str) and isinstance(d.get("reason"), str)
                for d in detail))
        if not good:
            return f"{response.status_code} not in the error shape: {text[:300]}"
    return None


OPERATIONS = ["GET /api/projects", "GET /api/projects/{project_id}", "GET /api/projects/{project_id}/images/{image_id}/thumbnail",
              "POST /api/projects/{project_id}/exports", "GET /api/projects/{project_id}/exports",
              "GET /api/exports/{job_id}", "POST /api/exports/{job_id}/cancel", "GET /api/exports/{job_id}/download",
              "POST /api/session", "GET /api/session", "POST /api/projects/import", "GET /", "GET /signin",
              "GET /login"]


@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_fuzzed_requests_get_no_5xx_no_leak_and_4xx_in_the_error_shape(target, mode):
    srv, cookies, schema = target
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {op.label for op in operations}
    assert set(OPERATIONS) <= labels, sorted(labels)  # the schema still lists what is fuzzed here
    problems: list[str] = []
    unsatisfiable: list[str] = []
    calls: list[tuple[str, int]] = []
    for operation in operations:
        if operation.label in SKIPPED:
            continue

        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def fuzz(case):
            response = case.call(base_url=srv.base_url, headers={"X-Requested-With": "cellhub"},
                                 cookies=cookies, timeout=30)
            calls.append((operation.label, response.status_code))
            problem = problem_with(response, operation.path, srv.data_dir)
            if problem is not None:
                problems.append(f"{operation.label} {case.path_parameters} {case.query}: {problem}")

        try:
            fuzz()
        except Unsatisfiable:  # nothing about this operation can be made invalid (no parameters)
            assert mode == GenerationMode.NEGATIVE, operation.label
            unsatisfiable.append(operation.label)
    assert not problems, "\n".join(problems[:20])
    assert len(calls) >= 100 and len({label for label, _ in calls}) >= 8, (len(calls), unsatisfiable)
    statuses = {status for _, status in calls}
    assert {200, 404, 422} <= statuses if mode == GenerationMode.POSITIVE else {404, 422} <= statuses, statuses
