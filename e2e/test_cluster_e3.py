"""Case 7 of issue 20: the cancel race of E3 (``e2e/test_multitab.py``) with the page's tabs
on different web replicas of a cluster, reached through nginx balancing over both replicas
with the README's example configuration (``testkit.nginx``), jobs run by worker processes.

Same races, same rules after every race as E3 (no download after the click; either
delivered before it and every tab says so, or cancelled with no file of any attempt): the
tabs' sockets, their cancels, the releases and the downloads are spread over both replicas
by nginx's round-robin, and the hold is a worker process's (``SharedTestHooks``)."""
from __future__ import annotations

import time

import pytest

from e2e.conftest import Workspace, reload_tab, set_hooks, wait_status
from e2e.test_multitab import OFFSETS_MS, _race_once
from testkit.cluster import api_call, start_cluster
from testkit.nginx import start_nginx

REPETITIONS = 2


class Front:
    """What the e2e helpers call a server: nginx's URL in front of the cluster."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url

    def api(self, method: str, path: str, body=None, cookies: dict | None = None):
        return api_call(self.base_url, method, path, body, cookies)


@pytest.fixture(scope="module")
def cluster():
    running = start_cluster()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def front(cluster):
    proxy = start_nginx([f"127.0.0.1:{replica.port}" for replica in cluster.replicas])
    yield proxy
    proxy.stop()


@pytest.fixture(scope="module")
def cluster_workspace(front, browser):
    workspace = Workspace(Front(front.base_url), browser)
    yield workspace
    workspace.close()


def _sockets_per_replica(cluster, expected: int = 3, timeout: float = 10) -> list[int]:
    """The open WebSockets of each replica, once ``expected`` are open in all (or at the timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        counts = [replica.api("GET", "/api/test/ws")[1]["connections"] for replica in cluster.replicas]
        if sum(counts) >= expected or time.monotonic() > deadline:
            return counts
        time.sleep(0.1)


def test_7_cancel_race_with_tabs_on_different_replicas_through_nginx(cluster, front, cluster_workspace):
    ws = cluster_workspace
    ws.begin()
    tabs = ws.tabs(3)
    # nginx's round-robin counts every request: when a page load makes an even number of them,
    # every tab's socket lands on the same replica. A request of our own before every other
    # reload shifts the count, so the reloaded tab's socket tries both replicas.
    for attempt in range(6):
        if all(_sockets_per_replica(cluster)):
            break
        if attempt % 2 == 0:
            api_call(front.base_url, "GET", "/api/session")
        reload_tab(tabs[-1])
        wait_status(tabs[-1], "idle")
    assert all(_sockets_per_replica(cluster)), _sockets_per_replica(cluster)
    set_hooks(ws.server, hold_before_complete=True)
    results = []
    for rep in range(REPETITIONS):
        starter, clicker = tabs[0], tabs[(rep + 1) % len(tabs)]
        for offset in OFFSETS_MS:
            results.append(_race_once(ws, tabs, starter, clicker, offset, f"rep {rep} offset {offset:+d} ms"))
    print("\nE3 races through nginx:", *results, sep="\n  ")
    assert len(results) == REPETITIONS * len(OFFSETS_MS)
    # The requests really went to both replicas (nginx's log names the upstream of each).
    log = front.access_log()
    for replica in cluster.replicas:
        assert f"127.0.0.1:{replica.port}" in log
    ws.end()
