"""Downloads resume (issue 21, R4 with ranges): ``ETag`` = the archive's SHA-256, one
``Range`` answered 206, ``If-Range`` honoured, 416 past the end; any 200 or 206 that starts
sending records delivery (R2 then answers 409 "already downloaded"), and a delivered job is
served again, whole or in part, to its owner."""
from __future__ import annotations

import hashlib

import httpx

from tests.service.conftest import Client, Live


def completed_job(user: Client) -> dict:
    job = user.start().json()
    return user.wait_status(job["id"], {"completed"})


def get(user: Client, job_id: str, **headers) -> httpx.Response:
    return user.http.get(f"/api/exports/{job_id}/download", headers=headers)


def test_the_etag_is_the_archives_sha256_and_the_job_says_it_too(live: Live):
    alice = live.new_user()
    job = completed_job(alice)
    whole = get(alice, job["id"])
    digest = hashlib.sha256(whole.content).hexdigest()
    assert whole.status_code == 200 and whole.headers["etag"] == f'"{digest}"'
    assert whole.headers["accept-ranges"] == "bytes"
    assert int(whole.headers["content-length"]) == len(whole.content) == job["size_bytes"]
    assert job["sha256"] == digest


def test_a_cut_download_resumes_with_a_range_and_if_range(live: Live):
    alice = live.new_user()
    job = completed_job(alice)
    size, digest = job["size_bytes"], job["sha256"]
    cut = size // 3
    head = get(alice, job["id"], Range=f"bytes=0-{cut - 1}")
    assert head.status_code == 206 and head.headers["content-range"] == f"bytes 0-{cut - 1}/{size}"
    assert len(head.content) == cut
    tail = get(alice, job["id"], Range=f"bytes={cut}-", **{"If-Range": f'"{digest}"'})
    assert tail.status_code == 206 and tail.headers["content-range"] == f"bytes {cut}-{size - 1}/{size}"
    assert int(tail.headers["content-length"]) == size - cut
    assert hashlib.sha256(head.content + tail.content).hexdigest() == digest
    suffix = get(alice, job["id"], Range="bytes=-100")
    assert suffix.content == tail.content[-100:]


def test_an_if_range_naming_another_version_or_several_ranges_get_the_whole_file(live: Live):
    alice = live.new_user()
    job = completed_job(alice)
    for headers in ({"Range": "bytes=10-", "If-Range": '"0000"'},
                    {"Range": "bytes=10-", "If-Range": "Tue, 15 Nov 1994 08:12:31 GMT"},
                    {"Range": "bytes=0-1,5-9"}):
        answer = get(alice, job["id"], **headers)
        assert answer.status_code == 200, headers
        assert hashlib.sha256(answer.content).hexdigest() == job["sha256"]


def test_a_range_past_the_end_is_416_and_records_nothing(live: Live):
    alice = live.new_user()
    job = completed_job(alice)
    answer = get(alice, job["id"], Range=f"bytes={job['size_bytes']}-")
    assert answer.status_code == 416 and answer.headers["content-range"] == f"bytes */{job['size_bytes']}"
    assert answer.content == b""
    assert alice.job(job["id"])["delivered"] is False
    assert alice.http.post(f"/api/exports/{job['id']}/cancel").json()["status"] == "cancelled"
    assert get(alice, job["id"], Range="bytes=0-").status_code == 410


def test_a_first_partial_download_records_delivery_and_the_owner_may_resume_and_repeat(live: Live):
    alice, bob = live.new_user(), live.new_user()
    job = completed_job(alice)
    assert get(alice, job["id"], Range="bytes=0-99").status_code == 206
    assert alice.job(job["id"])["delivered"] is True
    cancel = alice.http.post(f"/api/exports/{job['id']}/cancel")
    assert cancel.status_code == 409 and cancel.json()["detail"] == "already downloaded"
    rest = get(alice, job["id"], Range="bytes=100-", **{"If-Range": f'"{job["sha256"]}"'})
    again = get(alice, job["id"])
    assert (rest.status_code, again.status_code) == (206, 200)
    assert again.content[100:] == rest.content
    assert get(bob, job["id"], Range="bytes=0-").status_code == 404
    served = httpx.get(f"{live.base_url}/api/test/jobs/{job['id']}").json()
    assert served["download_requests"] == 4 and served["downloads_served"] == 3


def test_an_archive_finished_before_digests_were_kept_gets_its_etag_on_first_download(live: Live):
    alice = live.new_user()
    job = completed_job(alice)
    live.app.state.db.execute("UPDATE jobs SET archive_sha256 = NULL WHERE id = ?", (job["id"],))
    assert alice.job(job["id"])["sha256"] is None
    answer = get(alice, job["id"], Range="bytes=0-9")
    assert answer.status_code == 206 and answer.headers["etag"] == f'"{job["sha256"]}"'
    assert alice.job(job["id"])["sha256"] == job["sha256"]
