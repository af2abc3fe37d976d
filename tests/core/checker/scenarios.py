"""The small scenarios the exhaustive search runs, with their bounds.

A ``Search`` is a scenario and its bound: ``depth`` moves after the setup with every
interleaving (``deviations=None``), or interleavings to quiescence that leave the fair
order (oldest delivery first, timers last) at most ``deviations`` times (environment
moves anywhere). ``baseline(search)`` runs a search on the unpatched product once per
process and caches it (the mutant tests compare against the same searches).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from .search import SearchResult, explore
from .sim import Scenario, Sim


@dataclass(frozen=True)
class Search:
    """A scenario and the bound it is searched with (see module doc)."""

    scenario: Scenario
    depth: int
    deviations: Optional[int] = None

    @property
    def label(self) -> str:
        bound = (f"all interleavings of {self.depth} moves" if self.deviations is None
                 else f"to quiescence with at most {self.deviations} deviations from the fair order")
        return f"{self.scenario.name} [{bound}]"

    def run(self, **kw) -> SearchResult:
        return explore(self.scenario, self.depth, deviations=self.deviations, **kw)


# ----------------------------------------------------------------------------- setups

def start_run(sim: Sim) -> None:
    """Export clicked in tab1, everything delivered, the worker runs job-1."""
    sim.do("user: Export in tab1")
    sim.settle()
    sim.do("server: job-1 runs")
    sim.settle()


def completed(sim: Sim) -> None:
    """job-1 completed and every tab told: each live tab has its auto-download timer."""
    start_run(sim)
    sim.do("server: job-1 completes")
    sim.settle()


def completing(sim: Sim) -> None:
    """job-1 just completed on the server; the news is on its way to every tab."""
    start_run(sim)
    sim.do("server: job-1 completes")


def running_socket_down(sim: Sim) -> None:
    """job-1 running, tab1's WebSocket lost for good: tab1 polls."""
    start_run(sim)
    sim.do("net: tab1 WebSocket lost")
    sim.settle()


def completed_socket_down(sim: Sim) -> None:
    """job-1 running, tab1's WebSocket lost (tab1 polls), then job-1 completed: every
    other tab has the news, tab1 learns it at its next GET."""
    running_socket_down(sim)
    sim.do("server: job-1 completes")
    sim.settle()


def start_sent(sim: Sim) -> None:
    """Export clicked in tab1; the POST reached the server (job-1 queued), nothing else
    delivered yet."""
    sim.do("user: Export in tab1")
    sim.do("http-request tab1: POST /api/projects/1/exports")


def start_cancelled_on_a_flaky_network(sim: Sim) -> None:
    """The first start POST creates job-1 but its answer is lost; the next three POSTs
    never reach the server; Cancel is clicked in tab1 while it is starting."""
    sim.do("server: next POST gets lost")
    for _ in range(3):
        sim.do("server: next POST gets timeout")
    sim.do("user: Export in tab1")
    sim.do("user: Cancel in tab1")


def start_cancelled_then_closed(sim: Sim) -> None:
    """tab1 clicked Export, its POST created job-1, tab1 clicked Cancel before the answer
    and closed; job-1 completes; tab2 followed it and its auto-download timer has run."""
    start_sent(sim)
    sim.do("user: Cancel in tab1")
    sim.do("user: closes tab1")
    sim.do("server: job-1 completes")
    sim.settle()
    for _ in range(10):  # timers: the auto-download one, if a tab still offers job-1
        if sim.world.sched.next_timer() is None:
            break
        sim.do("timer ")
        sim.settle()


def start_answer_lost_while_another_tab_follows(sim: Sim) -> None:
    """tab1's start POST created job-1 but its answer was lost (tab1 will retry with the same
    start token); tab2 followed job-1 from the socket, persisted it and closed."""
    sim.do("server: next POST gets lost")
    sim.do("user: Export in tab1")
    sim.do("http-request tab1: POST /api/projects/1/exports")
    sim.settle()
    sim.do("user: closes tab2")


# -------------------------------------------------------------------------- scenarios

ONE_TAB = Scenario.make("1 tab: start, complete, cancel", tabs=1, start=1, complete=1, cancel=1)
ONE_COMPLETED = Scenario.make("1 tab, job completed, auto-download pending; cancel", tabs=1, setup=completed,
                              cancel=1)
ONE_RUNNING = Scenario.make("1 tab, job running; cancel, complete", tabs=1, setup=start_run, cancel=1, complete=1)
ONE_RUNNING_POLLING = Scenario.make("1 tab, job running, socket down (polling); cancel, complete", tabs=1,
                                    setup=running_socket_down, cancel=1, complete=1)
ONE_RUNNING_COMPLETES = Scenario.make("1 tab, job running; complete", tabs=1, setup=start_run, complete=1)
ONE_RUNNING_FAILS = Scenario.make("1 tab, job running; fail", tabs=1, setup=start_run, fail=1)
ONE_RUNNING_FAULTS = Scenario.make("1 tab, job running; cancel, complete, one 503/timeout/lost answer", tabs=1,
                                   setup=start_run, cancel=1, complete=1, fault=1)
TWO_COMPLETING = Scenario.make("2 tabs, job completing (completion race)", tabs=2, setup=completing)
TWO_COMPLETING_CANCEL = Scenario.make("2 tabs, job completing; cancel (cancel vs completion)", tabs=2,
                                      setup=completing, cancel=1)
TWO_COMPLETING_FALLBACK = Scenario.make("2 tabs without BroadcastChannel nor Web Locks, job completing", tabs=2,
                                        setup=completing, fallback=True)
TWO_RUNNING_RELOAD = Scenario.make("2 tabs, job running; reload, complete", tabs=2, setup=start_run, reload=1,
                                   complete=1)
ONE_COMPLETED_DOWNLOAD_FAILS = Scenario.make(
    "1 tab, job completed, auto-download pending; the download may never reach the server; Download again",
    tabs=1, setup=completed, dlfail=1, download=1)
TWO_COMPLETING_DOWNLOAD_FAILS = Scenario.make(
    "2 tabs, job completing; the download may never reach the server", tabs=2, setup=completing, dlfail=1)
ONE_COMPLETED_CLICKED = Scenario.make("1 tab, job completed, auto-download pending; Download clicked",
                                      tabs=1, setup=completed, download=1)
ONE_RUNNING_PROGRESS = Scenario.make("1 tab, job running; progress, progress", tabs=1, setup=start_run, progress=2)
TWO_BROWSERS_RUNNING = Scenario.make("2 browsers (1 tab each), job started in b1 running; complete, cancel",
                                     tabs=2, browsers=("b1", "b2"), setup=start_run, complete=1, cancel=1,
                                     max_tabs=2)
TWO_BROWSERS_COMPLETES = Scenario.make("2 browsers (1 tab each), job started in b1 running; complete",
                                       tabs=2, browsers=("b1", "b2"), setup=start_run, complete=1, max_tabs=2)
TWO_BROWSERS_COMPLETED_B1_POLLING = Scenario.make(
    "2 browsers (1 tab each), job started in b1 completed, b1's socket down (it polls); Download",
    tabs=2, browsers=("b1", "b2"), setup=completed_socket_down, download=1, max_tabs=2)

EXHAUSTIVE: tuple[Search, ...] = (
    Search(ONE_TAB, 40),
    Search(ONE_RUNNING_POLLING, 6),
    Search(TWO_COMPLETING, 5),
    Search(TWO_COMPLETING_CANCEL, 4),
    Search(TWO_COMPLETING, 60, deviations=2),
    Search(TWO_COMPLETING_CANCEL, 60, deviations=1),
    Search(TWO_COMPLETING_FALLBACK, 60, deviations=2),
    Search(TWO_RUNNING_RELOAD, 60, deviations=1),
    Search(ONE_RUNNING_FAULTS, 60, deviations=1),
    Search(ONE_COMPLETED_DOWNLOAD_FAILS, 60, deviations=1),
    Search(TWO_COMPLETING_DOWNLOAD_FAILS, 60, deviations=1),
    Search(TWO_BROWSERS_RUNNING, 60, deviations=1),
)
"""The exhaustive mode: each must find no violation."""

_BASELINES: dict[Search, SearchResult] = {}


def baseline(search: Search) -> SearchResult:
    """``search.run()`` on the unpatched product, once per process."""
    if search not in _BASELINES:
        _BASELINES[search] = search.run()
    return _BASELINES[search]


@dataclass(frozen=True)
class Finding:
    """A product defect the checker found: ``key`` F1..F8 (app/DECISIONS.md, "Checker"),
    the search that shows it, the invariant it breaks, what happens, the fix proposed."""

    key: str
    name: str
    search: Search
    breaks: str
    what: str
    fix: str


FINDINGS: tuple[Finding, ...] = (
    Finding(
        "F1", "stale-record-after-settled-failure",
        Search(Scenario.make("2 tabs, start request at the server; the job fails", tabs=2, setup=start_sent,
                             fail=1), 60, deviations=1),
        "I5",
        "tab2 follows job-1 from the socket, sees it fail and clears the record; then tab1 gets its 202 "
        "and persists job-1 (queued) again. Until tab1 hears of the failure the record is stale; if tab1 "
        "closes first, the next page load restores a job that failed long ago.",
        "persistence.clear writes a tombstone `cellhub.export.v1.ended.<job>` (JobMark, 24 h); "
        "persistence.save returns False when the job has a `cancelled` mark or a tombstone "
        "(on_storage_change ignores the new key: parse_mark_key already returns None for it).",
    ),
    Finding(
        "F2", "lost-frame-leaves-tab-waiting",
        Search(Scenario.make("1 tab, job running; a frame lost, complete", tabs=1, setup=start_run, lose=1,
                             complete=1), 4),
        "I3",
        "the `export.completed` frame is lost while the WebSocket stays open: the tab polls only while the "
        "socket is down, so it shows `running` forever and never downloads.",
        "poll also while the socket is up, slowly: in export_hook, `poll_on = \"poll\" in acts` and "
        "`_after(ports, poll_delay_ms(rt.poll_errors) if not socket_up else 30_000, send)` with "
        "`socket_up` in the effect's deps; and `refresh_now()` when a socket event's seq skips one "
        "(R6: seq grows by one per job event).",
    ),
    Finding(
        "F3", "reconnect-while-starting-loses-the-completion",
        Search(Scenario.make("1 tab, start request at the server; socket drop, complete", tabs=1,
                             setup=start_sent, drop=1, complete=1), 6),
        "I3",
        "the socket drops while the start request is answered; the job runs and completes while it is "
        "down; the reconnect's one GET (C7) is skipped because the tab has no job id yet; the 202 then "
        "shows `queued` and, with the socket up again, nothing ever asks again.",
        "the same slow poll while connected; or, precisely: `refresh_now` in `starting` remembers the "
        "request and StartAccepted performs it once the job id is known.",
    ),
    Finding(
        "F4", "cancel-while-starting-lost-on-reload",
        Search(Scenario.make("1 tab, start request at the server; cancel, reload", tabs=1, setup=start_sent,
                             cancel=1, reload=1), 3),
        "I7",
        "Cancel is clicked while starting (only the project's 60 s start-cancelled mark is written), then "
        "the tab reloads before the 202: nobody ever asks the server to cancel job-1; the reloaded page "
        "follows it from the socket and offers it completed, with a Download button.",
        "the mark must name the start it cancels: send a client token with the POST (R1 keeps it on the "
        "job and returns it), store it in the start-cancelled mark, and let any tab that follows, "
        "restores or attaches to a job carrying a marked token write the job's cancelled mark and "
        "cancel it (an Export clicked later in any tab supersedes the mark).",
    ),
    Finding(
        "F5", "cancel-while-starting-lapses-after-60-s",
        Search(Scenario.make("2 tabs: Cancel clicked while starting, tab closed, job completed; wait, Download",
                             tabs=2, setup=start_cancelled_then_closed, wait=1, download=1), 3),
        "I1",
        "the same lost cancel with the clicking tab closed: tab2 offers job-1 (auto-download blocked by "
        "the start-cancelled mark); 60 s later the mark lapses and a Download click downloads the job "
        "the user cancelled (C1).",
        "as above (the start-cancelled mark naming its start).",
    ),
    Finding(
        "F6", "cancel-while-starting-gives-up-on-a-flaky-network",
        Search(Scenario.make("2 tabs: Cancel while starting, the POST's answer lost, 3 retries fail; complete",
                             tabs=2, setup=start_cancelled_on_a_flaky_network, complete=1), 60, deviations=0),
        "I7",
        "after MAX_START_ATTEMPTS failed POSTs the cancelling tab concludes that nothing was created, goes "
        "`cancelled` and drops the start-cancelled mark; but the first POST did create job-1: tab2 follows "
        "it, and so does tab1 itself (a `cancelled` tab adopts the next job it hears of), and tab1 then "
        "downloads the job its user cancelled (I7, then I1).",
        "the same root cause as the lost cancel on reload: only a client token makes a retried POST safe "
        "(R1 attaches only to *active* jobs: a retry after job-1 completed creates job-2). With the token: "
        "keep retrying while cancelling (as C2 does for the cancel), never conclude `nothing was created`; "
        "a tab never adopts a job whose token a start-cancelled mark names.",
    ),
    Finding(
        "F7", "new-job-news-drops-a-pending-auto-download",
        Search(Scenario.make("1 tab, start request at the server; a new tab opens and starts, the job completes",
                             tabs=1, setup=start_sent, open=1, start=1, complete=1), 60, deviations=0),
        "I3",
        "job-1 completes and tab1 arms its auto-download timer; before it fires, the `started` event of "
        "job-2 (Export clicked in a tab that had not heard of job-1 yet) arrives: `completed` is in "
        "ADOPTABLE, so tab1 follows job-2 and job-1 is neither downloaded nor offered.",
        "in app/machine.py, add `& ~auto_download_pending` (status completed and auto_download) to the "
        "three `Update, ADOPTABLE, ... other_job` rows; the tab adopts job-2 after its download.",
    ),
    Finding(
        "F8", "repeated-start-of-a-failed-job-keeps-the-record",
        Search(Scenario.make("2 tabs: tab1's start answer lost, tab2 persisted job-1 and closed; the job fails",
                             tabs=2, setup=start_answer_lost_while_another_tab_follows, fail=1), 60,
               deviations=0),
        "I5",
        "tab1 retries its start with the same token and gets job-1, failed meanwhile: it shows the failure, "
        "but the `clear persisted` action of that row names the job the state held before the event "
        "(none while starting), so the record tab2 wrote stays and the next page load restores a job "
        "that failed long ago.",
        "the row clears the answered job's record: `clear_answered` (ClearPersist of the new state's "
        "job) instead of `clear_persist` on the StartAccepted row for ended jobs.",
    ),
)
"""Defects of the product found by the checker (all fixed): their searches stay as regression tests."""
