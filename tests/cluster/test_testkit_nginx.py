"""``testkit.nginx`` starts the README's nginx whatever the test process's umask: the suite's
process may have made a data folder private before (``make_private`` sets umask 077), and
nginx runs as another user that must still read its configuration."""
from __future__ import annotations

import os
import time

import httpx

from testkit import free_port
from testkit.nginx import start_nginx


def test_nginx_starts_under_a_private_umask_and_proxies():
    before = os.umask(0o077)
    try:
        proxy = start_nginx([f"127.0.0.1:{free_port()}"])  # nothing listens there: 502
    finally:
        os.umask(before)
    try:
        answer = httpx.get(proxy.base_url + "/api/health", timeout=10)
        assert answer.status_code == 502
        deadline = time.monotonic() + 10  # nginx logs a request after it has answered it
        while "GET /api/health HTTP/1.1 502" not in proxy.access_log() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "GET /api/health HTTP/1.1 502" in proxy.access_log()
    finally:
        proxy.stop()
