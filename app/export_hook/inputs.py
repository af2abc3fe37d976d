"""``Inputs``: what the hook hears besides its own requests, turned into events.

- the WebSocket (``LiveSocket``): R6 events; an event whose seq skips one means a lost
  frame, so the job is asked for once (F2); every (re)connect asks once too (C7);
- other tabs' BroadcastChannel messages (C6), malformed ones dropped with a warning;
- other tabs' storage writes: the project's record (read as it is *now*, the event's own
  value may be old news), a start-cancelled mark of the start that made our job, and the
  jobs' marks (``MARK_NEWS``);
- the tab becoming visible (C7: ask once).

``refresh_now()`` is that one GET of the current job; asked for while the job id is not
known yet (a reconnect while starting) it is remembered and made once the 202 names the
job (F3).
"""
from __future__ import annotations

from typing import Any, Callable, Optional

from app import crosstab, persistence
from app.export_hook.answers import MALFORMED, job_answer, socket_news
from app.export_hook.dispatcher import Dispatcher
from app.export_hook.live_socket import LiveSocket
from app.machine import POLLABLE, ExportState, FetchFailed, JobUpdate, Remote, State, Update
from app.ports import HttpResponse, Stop
from app.routes import job_path

MARK_NEWS = {"cancelled": "cancel-requested", "claimed": "download-claimed", "downloaded": "downloaded",
             "undelivered": "download-failed"}
"""The cross-tab news a mark written by another tab stands for (where no channel message
came first, or there is no BroadcastChannel)."""


class Inputs:
    """See the module doc. ``listen(on_socket_up)`` subscribes to everything and opens the
    WebSocket (``on_socket_up(bool)`` follows it); the returned ``Stop`` ends all of it."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.ports = dispatcher.ports
        self.project_id = dispatcher.project_id
        self._refreshes: dict[int, Stop] = {}
        self._refresh_ids = 0
        self._refresh_pending = False
        dispatcher.on_settled = self._refresh_if_pending

    def listen(self, on_socket_up: Callable[[bool], None]) -> Stop:
        p = self.ports

        def opened() -> None:
            on_socket_up(True)
            self.refresh_now()  # C7: once on (re)connect, to catch what was missed

        socket = LiveSocket(p.socket, p.clock, opened, self.on_socket_message, lambda: on_socket_up(False))
        stops = [p.channel.subscribe(self.on_channel_message), p.storage.subscribe(self.on_storage_change),
                 p.visibility.subscribe(self.refresh_now)]
        socket.open()

        def stop() -> None:
            socket.close()
            for each in stops:
                each()

        return stop

    # -- feeds
    def on_socket_message(self, message: Any) -> None:
        news, problem = socket_news(message)
        if problem is not None:
            self.ports.log.warn(f"dropped malformed socket event: {problem}")
        if news is None:
            return
        job = self.dispatcher.state.job
        gap = job is not None and news.update.job_id == job.id and news.update.seq > job.seq + 1
        self.dispatcher.dispatch(news)
        if gap:
            self.refresh_now()  # R6: seq grows by one per event, so a frame was lost (F2)

    def on_channel_message(self, raw: Any) -> None:
        msg, problem = crosstab.parse_message(raw, self.ports.tab_id)
        if problem is not None:
            self.ports.log.warn(f"dropped malformed cross-tab message: {problem}")
        if msg is not None and msg.project_id == self.project_id:
            self.dispatcher.dispatch(crosstab.message_to_event(msg))

    def on_storage_change(self, key: str, value: Optional[str]) -> None:
        if key == persistence.storage_key(self.project_id):
            self._record_changed(key)
            return
        token = persistence.parse_start_cancel_key(key)
        if token is not None:
            job = self.dispatcher.state.job
            if value is not None and job is not None and job.start_token == token:
                # Cancel clicked before the 202, in the tab whose start made the job we follow.
                self.dispatcher.dispatch(Remote("cancel-requested", job.id, self.project_id))
            return
        parsed = persistence.parse_mark_key(key)
        if parsed is not None and value is not None:
            kind, job_id = parsed
            self.dispatcher.dispatch(Remote(MARK_NEWS[kind], job_id, self.project_id))

    def _record_changed(self, key: str) -> None:
        p = self.ports
        # Events queue up: by the time this one is handled its value may be old news; the
        # key's value now is the truth. A removal says nothing about why (the channel and
        # the marks say it).
        value = p.storage.get(key)
        if value is None:
            return
        record, problem = persistence.decode_record(value, self.project_id, p.clock.now())
        if problem is not None and problem != "expired":
            p.log.warn(f"ignored persisted export written by another tab: {problem}")
        if record is not None:
            self.dispatcher.dispatch(Update(JobUpdate.from_job(record.job), "storage"))

    # -- one GET of the current job
    def refresh_now(self) -> None:
        """One GET of the current job (C7: on reconnect and when the tab becomes visible)."""
        state = self.dispatcher.state
        if not self.dispatcher.alive:
            return
        if state.job is None and state.status in (State.STARTING, State.CANCELLING):
            self._refresh_pending = True  # made once the 202 names the job
            return
        if state.job is None or state.status not in POLLABLE | {State.COMPLETED}:
            return
        self._refresh_ids += 1
        rid = self._refresh_ids
        job_id = state.job.id

        def on_response(resp: HttpResponse) -> None:
            self._refreshes.pop(rid, None)
            self.answer_get(job_id, resp, "poll")

        def on_error(message: str) -> None:
            self._refreshes.pop(rid, None)

        self._refreshes[rid] = self.ports.http.request("GET", job_path(job_id), None, on_response, on_error)

    def answer_get(self, job_id: str, resp: HttpResponse, source: str) -> bool:
        """Dispatch the event of a GET answer; False when it was an error worth a retry."""
        event = job_answer(job_id, self.project_id, resp, source)
        if isinstance(event, FetchFailed) and event.message == MALFORMED:
            self.ports.log.warn(f"ignored malformed job in GET {job_path(job_id)}")
        self.dispatcher.dispatch(event)
        return not (isinstance(event, FetchFailed) and event.outcome == "retry")

    def _refresh_if_pending(self, state: ExportState) -> None:
        if self._refresh_pending and state.job is not None:
            # A refresh asked for while the job id was unknown (a reconnect while starting):
            # what the socket missed meanwhile may be the job's completion (F3).
            self._refresh_pending = False
            self.refresh_now()

    def stop(self) -> None:
        """Abort the refreshes in flight."""
        for stop in list(self._refreshes.values()):
            stop()
        self._refreshes.clear()
