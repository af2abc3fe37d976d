"""The activities of the machine's states (``app.machine.engine.ACTIVITIES``), one small
function each, and ``ACTIVITY_EFFECTS``: the table the hook loops over. A new effect goes at
the end of the table (hooks are told apart by their order).

Each activity starts its work from a ``Scene`` (what the render knew, and the hook's
parts) and returns the ``Stop`` that ends it; the hook runs it as one ``use_effect``
whose deps are ``deps(on, scene)``, so it restarts when they change and stops when the
machine leaves the state (the effect's cleanup). What an answer means is decided by the
pure functions of ``app.export_hook.answers``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Optional

from app.export_hook.answers import MALFORMED, NO_ANSWER, cancel_answer, delivery_news, start_answer
from app.export_hook.dispatcher import Dispatcher
from app.export_hook.inputs import Inputs
from app.export_hook.timing import (
    AUTO_DOWNLOAD_DELAY_MS, CANCEL_REQUEST_DELAY_MS, POLL_CONNECTED_MS, after, confirm_delay_ms, poll_delay_ms,
    retry_delay_ms,
)
from app.machine import (
    AutoDownloadDue, CancelAnswered, DeliveryUnconfirmed, ExportState, FetchFailed, LockResult, StartFailed,
)
from app.models import ExportOptions
from app.ports import HttpResponse, Stop
from app.routes import cancel_path, job_path, start_path


class PollRounds:
    """The poll's memory across its rounds: failed polls in a row, and how to start the
    next round (a state of the hook, so the poll effect runs again)."""

    def __init__(self, next_round: Callable[[], None]) -> None:
        self.errors = 0
        self.next_round = next_round


@dataclass(frozen=True)
class Scene:
    """What an activity starts from: the rendered state, whether the WebSocket is up, the
    poll's round, and the hook's parts (``dispatcher.state`` is the latest state)."""

    state: ExportState
    socket_up: bool
    poll_round: int
    dispatcher: Dispatcher
    inputs: Inputs
    polls: PollRounds

    @property
    def job_id(self) -> Optional[str]:
        return self.state.job_id

    def request(self, method: str, path: str, body: Optional[dict], on_response: Callable[[HttpResponse], Any],
                on_error: Callable[[str], Any]) -> Stop:
        return self.dispatcher.ports.http.request(method, path, body, on_response, on_error)

    def after(self, delay_ms: float, send: Callable[[], Stop]) -> Stop:
        return after(self.dispatcher.ports.clock, delay_ms, send)


def start_request(scene: Scene) -> Stop:
    """POST the options (retries are safe: R1 answers a repeated start token with its job)."""
    latest = scene.dispatcher.state
    options = latest.options or ExportOptions()
    dispatch = scene.dispatcher.dispatch

    def on_response(resp: HttpResponse) -> None:
        event = start_answer(resp)
        if isinstance(event, StartFailed) and event.message == MALFORMED:
            scene.dispatcher.ports.log.warn("malformed job in the start answer")
        dispatch(event)

    def send() -> Stop:
        return scene.request("POST", start_path(latest.project_id, latest.start_token), options.model_dump(mode="json"),
                             on_response, lambda message: dispatch(StartFailed(message or NO_ANSWER, retryable=True)))

    return scene.after(retry_delay_ms(latest.attempt), send)


def cancel_request(scene: Scene) -> Stop:
    """POST cancel (C2); the state is already ``cancelling`` (C1) when this runs."""
    job_id = scene.job_id
    dispatch = scene.dispatcher.dispatch

    def send() -> Stop:
        return scene.request("POST", cancel_path(job_id), None, lambda resp: dispatch(cancel_answer(resp)),
                             lambda message: dispatch(CancelAnswered("retry", None, message or NO_ANSWER)))

    attempt = scene.dispatcher.state.attempt
    return scene.after(retry_delay_ms(attempt) if attempt else CANCEL_REQUEST_DELAY_MS, send)


def fetch_job(scene: Scene) -> Stop:
    """GET a restored (or relayed) job before anything of it is shown (C8)."""
    job_id = scene.job_id

    def send() -> Stop:
        return scene.request("GET", job_path(job_id), None,
                             lambda resp: scene.inputs.answer_get(job_id, resp, "fetch"),
                             lambda message: scene.dispatcher.dispatch(FetchFailed(job_id, "retry", message)))

    return scene.after(retry_delay_ms(scene.dispatcher.state.attempt), send)


def poll(scene: Scene) -> Stop:
    """C7: every 2 s while the WebSocket is down, backing off on errors; every 30 s while
    it is up (an open socket can still lose a frame: F2, F3)."""
    job_id = scene.job_id
    polls = scene.polls

    def on_response(resp: HttpResponse) -> None:
        polls.errors = 0 if scene.inputs.answer_get(job_id, resp, "poll") else polls.errors + 1
        polls.next_round()

    def on_error(message: str) -> None:
        polls.errors += 1
        polls.next_round()

    def send() -> Stop:
        return scene.request("GET", job_path(job_id), None, on_response, on_error)

    return scene.after(POLL_CONNECTED_MS if scene.socket_up else poll_delay_ms(polls.errors), send)


def auto_download(scene: Scene) -> Stop:
    """The auto-download timer of a completion seen live (C1: leaving the state clears it)."""
    job_id = scene.job_id
    return scene.dispatcher.ports.clock.set_timeout(lambda: scene.dispatcher.dispatch(AutoDownloadDue(job_id)),
                                                    AUTO_DOWNLOAD_DELAY_MS)


def download_lock(scene: Scene) -> Stop:
    """Ask for the Web Lock ``export-download:<job>`` (C4); held until this tab moves on."""
    job_id = scene.job_id
    return scene.dispatcher.ports.locks.try_acquire(
        f"export-download:{job_id}", lambda release: scene.dispatcher.dispatch(LockResult(job_id, release is not None)))


def confirm_delivery(scene: Scene) -> Stop:
    """C9: ask the server whether it recorded the download (ask number ``attempt``, after
    ``confirm_delay_ms``); its news is dispatched (the machine then shows it downloaded,
    cancelled...); an answer that settles nothing is ``DeliveryUnconfirmed`` (the machine
    asks again, or, after the last ask, offers the download again)."""
    job_id = scene.job_id
    dispatcher = scene.dispatcher
    latest = dispatcher.state

    def answered(event: Any) -> None:
        before = dispatcher.state
        if event is not None:
            dispatcher.dispatch(event)
        if dispatcher.state is before:
            dispatcher.dispatch(DeliveryUnconfirmed(job_id))

    def send() -> Stop:
        return scene.request("GET", job_path(job_id), None,
                             lambda resp: answered(delivery_news(job_id, dispatcher.project_id, resp)),
                             lambda message: answered(None))

    return scene.after(confirm_delay_ms(latest.attempt, latest.handed_out_here), send)


@dataclass(frozen=True)
class ActivityEffect:
    """An activity as the hook runs it: ``start(scene)`` when it is on (an activity that
    needs the job runs only once the job is known), with ``deps(on, scene)``."""

    name: str
    start: Callable[[Scene], Optional[Stop]]
    deps: Callable[[bool, Scene], tuple]
    needs_job: bool = True

    def effect(self, on: bool, scene: Scene) -> Callable[[], Optional[Stop]]:
        def run() -> Optional[Stop]:
            if not on or (self.needs_job and scene.job_id is None):
                return None
            return self.start(scene)
        return run


ACTIVITY_EFFECTS: tuple[ActivityEffect, ...] = (
    ActivityEffect("start_request", start_request, lambda on, s: (on, s.state.attempt), needs_job=False),
    ActivityEffect("cancel_request", cancel_request, lambda on, s: (on, s.job_id, s.state.attempt)),
    ActivityEffect("fetch_job", fetch_job, lambda on, s: (on, s.job_id, s.state.attempt)),
    ActivityEffect("poll", poll, lambda on, s: (on, s.socket_up, s.job_id, s.poll_round)),
    ActivityEffect("auto_download", auto_download, lambda on, s: (on, s.job_id, s.state.status)),
    ActivityEffect("download_lock", download_lock, lambda on, s: (on, s.job_id)),
    ActivityEffect("confirm_delivery", confirm_delivery, lambda on, s: (on, s.job_id, s.state.attempt)),
)
"""The hook's effects, in hook order (one per activity of ``app.machine.engine.ACTIVITIES``)."""
