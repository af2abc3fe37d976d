"""Seeded random interleavings of deliveries, timers, server progress and user clicks over
2-3 tabs: the safety invariants of ``World.violations`` always hold, and once everything
has been delivered no tab is left half-way and the tabs agree with the server."""
from __future__ import annotations

import random

import pytest

from app.export_hook import AUTO_DOWNLOAD_DELAY_MS

from .fakes import World

PID = 1
SETTLED = {"idle", "cancelled", "completed", "downloaded", "failed", "queued", "running"}


def _explore(seed: int) -> tuple[World, dict]:
    rng = random.Random(seed)
    w = World()
    fallback = rng.random() < 0.3
    kw = {"channel": "storage", "locks": "storage"} if fallback else {}
    tabs = [w.open_tab(PID, **kw) for _ in range(rng.choice([2, 3]))]
    w.settle()
    starter = rng.choice(tabs)
    starter.start()
    facts = {"cancel": False, "reload": False}

    def job_id():
        return next(iter(w.server.jobs), None)

    def server_step() -> None:
        jid = job_id()
        if jid is None:
            return
        status = w.server.jobs[jid].status
        if status == "queued":
            w.server.run(jid, progress=10.0)
        elif status == "running":
            if rng.random() < 0.6:
                w.server.progress(jid, 50.0)
            else:
                w.server.complete(jid)

    def user_step() -> None:
        tab = rng.choice([t for t in w.tabs.values() if not t.closed])
        roll = rng.random()
        if roll < 0.35 and not facts["cancel"]:
            facts["cancel"] = True
            tab.cancel()
        elif roll < 0.5:
            facts["reload"] = True
            w.reload(tab, **kw)
        elif roll < 0.65:
            w.drop_socket(tab, block=False)
        elif roll < 0.8 and tab.job is not None:
            tab.download(tab.job.id)

    script = [server_step] * 6 + [user_step] * rng.choice([0, 1, 2, 3])
    rng.shuffle(script)
    for _ in range(400):
        steps = w.steps()
        if script and (not steps or rng.random() < 0.15):
            script.pop()()
            continue
        if not steps:
            break
        w.fire(rng.choice(steps))
    while script:
        script.pop()()
        w.advance(rng.choice([0, AUTO_DOWNLOAD_DELAY_MS, 3_000]))
    jid = job_id()
    if jid is not None and w.server.jobs[jid].status in ("queued", "running"):
        w.server.finish(jid)
    w.advance(120_000)
    return w, facts


@pytest.mark.parametrize("seed", range(150))
def test_random_interleavings_keep_the_invariants(seed):
    w, facts = _explore(seed)
    try:
        assert w.violations() == []
        jid = next(iter(w.server.jobs), None)
        if jid is None:  # the starting tab was reloaded before its POST left
            assert facts["reload"] and all(t.status == "idle" for t in w.tabs.values() if not t.closed)
            return
        server = w.server.jobs[jid]
        for tab in w.tabs.values():
            if tab.closed:
                continue
            assert tab.status in SETTLED, (tab.id, tab.status)
            if tab.job is not None and tab.job.id == jid:
                expected = {"cancelled": {"cancelled"}, "failed": {"failed"},
                            "completed": {"completed", "downloaded"}}[server.status]
                assert tab.status in expected, (tab.id, tab.status, server.status)
        if server.status == "completed" and not facts["cancel"] and not facts["reload"]:
            assert len(w.downloads_of(jid)) == 1  # seen live by a tab that stayed: downloaded
        if server.status == "cancelled":
            assert [d for d in w.downloads_of(jid) if d.server_status == 200] == []
    finally:
        w.close()
