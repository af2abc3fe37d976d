"""Seeded random interleavings over 2-3 tabs: deliveries in any enabled order, timers,
server progress and failures, user clicks (start, cancel, download, dismiss, reload,
visibility), socket drops and injected network faults.

After each run everything is delivered and time runs on; then the safety invariants of
``World.violations`` must hold (at most one download per job, none after a cancel click,
none refused by the server without a cancel), no tab may be left half-way (starting,
restoring, cancelling, downloading) and every tab showing a job agrees with the server.
"""
from __future__ import annotations

import random

import pytest

from app.ports import HttpResponse

from .fakes import LOST_RESPONSE, NETWORK_ERROR, World

PID = 1
HALF_WAY = {"starting", "restoring", "cancelling", "downloading", "delivering"}
AGREES = {"cancelled": {"cancelled"}, "failed": {"failed"}, "expired": {"failed"},
          "completed": {"completed", "downloaded", "undelivered"}}


def _explore(seed: int) -> tuple[World, dict]:
    rng = random.Random(seed)
    w = World()
    kw = {"channel": "storage", "locks": "storage"} if rng.random() < 0.3 else {}
    tabs = [w.open_tab(PID, **kw) for _ in range(rng.choice([2, 3]))]
    w.settle()
    rng.choice(tabs).start()
    facts = {"reload": False}

    def server_step() -> None:
        for jid, job in list(w.server.jobs.items()):
            if job.status == "queued":
                w.server.run(jid, progress=10.0)
            elif job.status == "running":
                roll = rng.random()
                if roll < 0.5:
                    w.server.progress(jid, 50.0)
                elif roll < 0.9:
                    w.server.complete(jid)
                else:
                    w.server.fail(jid)

    def user_step() -> None:
        tab = rng.choice([t for t in w.tabs.values() if not t.closed])
        roll = rng.random()
        if roll < 0.25:
            tab.cancel()
        elif roll < 0.35:
            facts["reload"] = True
            w.reload(tab, **kw)
        elif roll < 0.45:
            w.drop_socket(tab, block=False)
        elif roll < 0.6:
            tab.download()
        elif roll < 0.7:
            tab.show()
        elif roll < 0.8:
            tab.dismiss()
        elif roll < 0.9:
            tab.start()
        else:
            w.server.inject(rng.choice(["POST", "GET"]), r".*",
                            rng.choice([NETWORK_ERROR, LOST_RESPONSE, HttpResponse(503, {})]),
                            times=rng.choice([1, 2]))

    script = [server_step] * 8 + [user_step] * rng.choice([1, 3, 6, 10])
    rng.shuffle(script)
    for _ in range(600):
        steps = w.steps()
        if script and (not steps or rng.random() < 0.15):
            script.pop()()
            continue
        if not steps:
            break
        w.fire(rng.choice(steps))
    for jid, job in list(w.server.jobs.items()):
        if job.status in ("queued", "running"):
            w.server.finish(jid)
    w.server.injections.clear()
    for _ in range(5):
        w.advance(60_000)
    return w, facts


@pytest.mark.parametrize("seed", range(300))
def test_random_interleavings_keep_the_invariants(seed):
    w, facts = _explore(seed)
    try:
        assert w.violations() == []
        for tab in w.tabs.values():
            assert tab.status not in HALF_WAY, (tab.id, tab.status)
            if tab.job is not None and tab.job.id in w.server.jobs and tab.status != "idle":
                server_status = w.server.jobs[tab.job.id].status
                assert tab.status in AGREES.get(server_status, {server_status}), (tab.id, tab.status, server_status)
        clicked = {job for _, _, job in w.cancel_clicks()}
        for jid, job in w.server.jobs.items():
            if job.status == "completed" and jid not in clicked and not facts["reload"] \
                    and any(t.job is not None and t.job.id == jid and t.hook.state.live for t in w.tabs.values()):
                # a completion seen live by a tab that is still open ends in one download
                assert len(w.downloads_of(jid)) == 1, jid
    finally:
        w.close()
