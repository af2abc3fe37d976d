"""Persisted records and marks (C4, C5) and the cross-tab protocol (C6) with its fallbacks."""
from __future__ import annotations

import json

from app import persistence as p
from app.crosstab import (
    BUS_KEY, StorageChannel, StorageClaimLocks, make_message, message_to_event, parse_message,
)
from app.machine import Remote, Update
from app.models import ExportJob

from .fakes import FakeClockPort, FakeLog, World

PID = 3
NOW = 1_700_000_000_000.0


def job(status="running", seq=2, jid="j1", **kw) -> ExportJob:
    return ExportJob(id=jid, project_id=PID, status=status, seq=seq, created_at="t", **kw)


def storage(world: World, tab: str = "t1"):
    return world.storage.view(tab)


def test_keys():
    assert p.storage_key(12) == "cellhub.export.v1.12"
    assert p.mark_key("downloaded", "abc") == "cellhub.export.v1.downloaded.abc"
    assert p.parse_mark_key("cellhub.export.v1.cancelled.abc") == ("cancelled", "abc")
    assert [p.parse_mark_key(p.mark_key(kind, "j")) for kind in p.MARK_KINDS] == [
        ("cancelled", "j"), ("claimed", "j"), ("downloaded", "j"), ("undelivered", "j")]
    assert p.parse_mark_key("cellhub.export.v1.12") is None


def test_save_then_load_round_trips(world):
    s, log = storage(world), FakeLog()
    assert p.save(s, PID, job(), NOW, "t1")
    record = p.load(s, PID, NOW + 1000, log)
    assert record.job == job() and record.saved_at == NOW and record.tab_id == "t1"
    assert set(json.loads(s.get(p.storage_key(PID)))) == {"v", "saved_at", "project_id", "job", "tab_id"}
    assert log.warnings == []


def test_dropped_records(world):
    s = storage(world)
    good = json.loads(p.PersistedExport(v=1, saved_at=NOW, project_id=PID, job=job()).model_dump_json())
    cases = {
        "corrupt (not JSON)": "{",
        "corrupt (not an object)": "[1]",
        "unknown version 2": json.dumps({**good, "v": 2}),
        "unknown version None": json.dumps({k: v for k, v in good.items() if k != "v"}),
        "corrupt (1 invalid fields)": json.dumps({**good, "job": {**good["job"], "status": "paused"}}),
        "for another project": json.dumps({**good, "project_id": PID + 1}),
        "expired": json.dumps({**good, "saved_at": NOW - p.PERSIST_TTL_MS - 1}),
    }
    for reason, raw in cases.items():
        log = FakeLog()
        s.set(p.storage_key(PID), raw)
        assert p.load(s, PID, NOW, log) is None
        assert s.get(p.storage_key(PID)) is None
        assert len(log.warnings) == 1 and reason in log.warnings[0], (reason, log.warnings)


def test_save_never_overwrites_newer_news(world):
    s = storage(world)
    p.save(s, PID, job(seq=5), NOW, "a")
    assert not p.save(s, PID, job(seq=4), NOW, "b")
    assert not p.save(s, PID, job(seq=5), NOW, "b")  # nothing new
    assert not p.save(s, PID, job(seq=5, progress=40.0), NOW, "b")  # another tab's copy of the same event
    assert not p.save(s, PID, job(seq=6, progress=50.0), NOW, "b")  # progress: a reload re-queries it (C8)
    assert p.save(s, PID, job(status="completed", seq=7), NOW, "b")
    assert p.save(s, PID, job(status="completed", seq=7, delivered=True), NOW, "b")
    assert not p.save(s, PID, job(status="completed", seq=7), NOW, "b")  # delivered is not taken back
    p.save(s, PID, job(jid="j2", status="running", seq=1), NOW, "c", replace_other=True)
    assert not p.save(s, PID, job(jid="old", status="completed", seq=9), NOW, "c")  # j2 is active
    assert p.save(s, PID, job(jid="new", status="queued", seq=1), NOW, "c", replace_other=True)
    assert json.loads(s.get(p.storage_key(PID)))["job"]["id"] == "new"


def test_clear_removes_only_the_named_job(world):
    s = storage(world)
    p.save(s, PID, job(jid="mine"), NOW, "a")
    assert not p.clear(s, PID, "other")
    assert p.clear(s, PID, "mine") and s.get(p.storage_key(PID)) is None
    s.set(p.storage_key(PID), "garbage")
    assert p.clear(s, PID, "any")


def test_clear_writes_the_tombstone_once_while_it_is_valid(world):
    """Every tab clears the same job; only the first write wakes the other tabs (a storage
    event each), later clears find the valid tombstone and leave it; an expired one is
    written anew."""
    s = storage(world)
    key = p.mark_key(p.TOMBSTONE, "j1")
    p.clear(s, PID, "j1", NOW, "a")
    first = s.get(key)
    assert json.loads(first)["tab_id"] == "a"
    events = len(world.sched.deliveries())
    p.clear(storage(world, "t2"), PID, "j1", NOW + 1_000, "b")
    assert s.get(key) == first and len(world.sched.deliveries()) == events
    later = NOW + p.MARK_TTL_MS + 1
    p.clear(s, PID, "j1", later, "c")
    assert json.loads(s.get(key)) == {"v": 1, "ts": later, "tab_id": "c"}


def test_marks(world):
    s, log = storage(world), FakeLog()
    assert p.read_marks(s, "j1", NOW, log) == p.Marks()
    p.write_mark(s, "cancelled", "j1", NOW, "a")
    assert p.read_marks(s, "j1", NOW, log) == p.Marks(cancelled=True)
    assert not p.has_mark(s, "cancelled", "j1", NOW + p.MARK_TTL_MS + 1, log)
    assert s.get(p.mark_key("cancelled", "j1")) is None  # expired marks are removed
    s.set(p.mark_key("downloaded", "j1"), "junk")
    assert not p.has_mark(s, "downloaded", "j1", NOW, log) and len(log.warnings) == 1


# ---------------------------------------------------------------------------- cross-tab


def test_message_shape_and_parsing():
    msg = make_message("tabA", "completed", job("completed", 4), NOW)
    raw = msg.model_dump()
    assert raw == {"v": 1, "tab_id": "tabA", "project_id": PID, "job_id": "j1", "kind": "completed",
                   "status": "completed", "seq": 4, "ts": NOW}
    assert parse_message(raw, "tabB") == (msg, None)
    assert parse_message(raw, "tabA") == (None, None)  # own message: silently ignored
    for bad in ("x", {**raw, "v": 2}, {**raw, "kind": "exploded"}, {**raw, "seq": -1}, {"tab_id": "z"}):
        parsed, problem = parse_message(bad, "tabB")
        assert parsed is None and problem


def test_message_to_event():
    status_event = message_to_event(make_message("a", "completed", job("completed", 4), NOW))
    assert isinstance(status_event, Update) and status_event.source == "channel"
    assert status_event.update.status == "completed" and status_event.update.seq == 4
    fact = message_to_event(make_message("a", "cancel-requested", job(), NOW))
    assert fact == Remote("cancel-requested", "j1", PID)


def test_storage_channel_reaches_only_other_tabs(world):
    a, b = StorageChannel(storage(world, "a"), "a"), StorageChannel(storage(world, "b"), "b")
    got_a, got_b = [], []
    a.subscribe(got_a.append)
    b.subscribe(got_b.append)
    a.post({"hello": 1})
    a.post({"hello": 1})  # same content again still arrives (nonce)
    world.settle()
    assert got_b == [{"hello": 1}, {"hello": 1}] and got_a == []
    storage(world, "a").set(BUS_KEY, "not json")
    world.settle()
    assert got_b[-1] == {"malformed": "not json"}


def test_storage_claim_locks_grant_one_holder(world):
    def locks(tab):
        return StorageClaimLocks(storage(world, tab), FakeClockPort(world, tab), tab, ttl_ms=10_000, confirm_ms=50)

    la, lb = locks("a"), locks("b")
    results = {}
    la.try_acquire("L", lambda r: results.setdefault("a", r))
    lb.try_acquire("L", lambda r: results.setdefault("b", r))
    world.advance(100)
    granted = [k for k, v in results.items() if v is not None]
    assert len(results) == 2 and len(granted) == 1
    # The holder releases: the next request is granted.
    results[granted[0]]()
    again = []
    lb.try_acquire("L", again.append)
    world.advance(100)
    assert again and again[0] is not None


def test_storage_claim_locks_expire_and_cancel(world):
    la = StorageClaimLocks(storage(world, "a"), FakeClockPort(world, "a"), "a", ttl_ms=1_000)
    lb = StorageClaimLocks(storage(world, "b"), FakeClockPort(world, "b"), "b", ttl_ms=1_000)
    held = []
    la.try_acquire("L", held.append)
    world.advance(100)
    assert held[0] is not None
    denied = []
    lb.try_acquire("L", denied.append)
    world.advance(100)
    assert denied == [None]
    later = []
    world.advance(1_000)  # a's claim lapsed (a closed tab cannot block forever)
    lb.try_acquire("L", later.append)
    world.advance(100)
    assert later[0] is not None
    withdrawn = []
    cancel = la.try_acquire("M", withdrawn.append)
    cancel()
    world.advance(100)
    assert withdrawn == [] and not any(k.endswith(".M") for k in world.storage.data)
