"""The checker's own machinery: the invariants flag what they must on worlds forced into
a bad state (independently of the mutants), replay is exact, state hashing merges only
equal states, ``finish`` reports a world that never gets quiet, and a cancel clicked
while starting counts for the job that start created."""
from __future__ import annotations

from .checker import Scenario, Sim, finish, replay
from .checker.invariants import final_violations, step_violations
from .checker.scenarios import ONE_COMPLETED, ONE_TAB, TWO_COMPLETING, start_sent
from .checker.sim import cancel_clicks


def codes(violations: list[str]) -> set[str]:
    return {v.split(":")[0] for v in violations}


def test_a_download_after_a_cancel_click_breaks_i1_and_a_second_one_i2():
    sim = Sim(ONE_COMPLETED)
    try:
        tab = sim.tab("tab1")
        sim.do("user: Cancel in tab1")
        assert step_violations(sim) == []
        tab.ports.downloader.download("/api/exports/job-1/download")  # forced: the product never does this
        assert codes(step_violations(sim)) == {"I1"}
        tab.ports.downloader.download("/api/exports/job-1/download")
        assert codes(step_violations(sim)) == {"I1", "I2"}
        # The world's own check is the same code (tests/core/fakes/safety.py).
        assert sorted(sim.world.violations()) == sorted(v for v in step_violations(sim) if v[:2] in ("I1", "I2"))
    finally:
        sim.close()


def test_a_download_the_server_refuses_without_any_cancel_breaks_i2():
    sim = Sim(ONE_COMPLETED)
    try:
        sim.do("timer tab1 auto_download")
        sim.world.server.expire("job-1")  # forced: R5's TTL passes between the lock request and the fetch
        sim.settle()
        assert [d.server_status for d in sim.world.downloads] == [410]
        assert any(v.startswith("I2: job-1 download in tab1 refused") for v in step_violations(sim))
    finally:
        sim.close()


def test_final_invariants_see_a_tab_left_waiting_and_a_completion_never_downloaded():
    sim = Sim(ONE_COMPLETED)
    try:
        sim.world.sched.timers.clear()  # forced: the auto-download timer vanishes
        assert codes(final_violations(sim)) == {"I3"}
        sim.world.server.jobs["job-1"] = sim.world.server.jobs["job-1"].model_copy(update={"status": "failed"})
        assert codes(final_violations(sim)) == {"I4"}  # shows completed, the server says failed
    finally:
        sim.close()


def test_finish_reports_a_world_that_does_not_get_quiet_within_its_bound():
    sim = Sim(TWO_COMPLETING)
    try:
        assert codes(finish(sim, bound=3)) == {"L0"}
    finally:
        sim.close()
    sim = Sim(TWO_COMPLETING)
    try:
        assert finish(sim) == [] and len(sim.world.downloads) == 1
    finally:
        sim.close()


def test_replay_is_exact_and_hashing_merges_orders_of_independent_deliveries():
    sim = Sim(TWO_COMPLETING)
    first = [m for m in sim.moves() if m.kind == "fire"][:2]  # the completion frames to tab1 and tab2
    assert [m.text.split(":")[0] for m in first] == ["socket tab1", "socket tab2"]
    texts = [m.text for m in first]
    sim.apply(first[0])
    sim.apply(sim.find(texts[1]))
    other = replay(TWO_COMPLETING, [texts[1], texts[0]])
    again = replay(TWO_COMPLETING, texts)
    try:
        assert again.fingerprint() == sim.fingerprint() and again.trace == sim.trace
        # The two frames commute: each tab relays the completion to the other either way, and
        # only tab1, whose start made job-1, writes the record (issue 18): one state.
        assert other.fingerprint() == sim.fingerprint() and other.trace != sim.trace
        sim.do("timer ")
        assert sim.fingerprint() != again.fingerprint()
    finally:
        for s in (sim, other, again):
            s.close()


def test_a_cancel_clicked_while_starting_counts_for_the_job_that_start_created():
    sim = Sim(Scenario.make("1 tab, start sent", tabs=2, setup=start_sent, cancel=1, close=1))
    try:
        sim.do("user: Cancel in tab1")
        sim.do("user: closes tab1")
        # tab1 never showed the job: the click counts for the job its start token made
        assert [(tab, job) for _, tab, job in cancel_clicks(sim)] == [("tab1", "job-1")]
        assert sim.world.server.jobs["job-1"].start_token == sim.world.cancel_context[3][0]
    finally:
        sim.close()


def test_the_one_tab_scenario_offers_its_moves_only_when_the_page_shows_the_button():
    sim = Sim(ONE_TAB)
    try:
        assert [m.text for m in sim.moves() if m.kind != "fire"] == ["user: Export in tab1"]
        sim.do("user: Export in tab1")
        assert [m.kind for m in sim.moves() if m.kind != "fire"] == ["cancel"]
    finally:
        sim.close()
