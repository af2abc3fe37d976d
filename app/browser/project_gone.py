"""When the project of the page is no longer the user's to see (R9: access revoked, made
private, deleted): ``project.gone`` over the WebSocket, or a 404 for the project's own routes.

``GoneSocket`` wraps the tab's ``Socket`` port: ``project.*`` events go to the page, every
other message to the export hook as before. ``show_project_gone`` replaces the page's main
area by a notice with a link to the user's projects, once; nothing keeps polling after it.
"""
from __future__ import annotations

from typing import Any, Callable

import js  # type: ignore[import-not-found]

from app.browser.dom import attr, el, h


class GoneSocket:
    """A ``Socket`` port that hands ``project.*`` events to ``on_project_event``."""

    def __init__(self, inner: Any, on_project_event: Callable[[dict], None]) -> None:
        self.inner = inner
        self.on_project_event = on_project_event

    def connect(self, on_open, on_message, on_close):
        def route(message: dict) -> None:
            if str(message.get("type", "")).startswith("project."):
                self.on_project_event(message)
            else:
                on_message(message)

        return self.inner.connect(on_open, route, on_close)


def show_project_gone() -> None:
    """Replace ``main`` by the notice (``#project-gone``); ``body[data-project-gone]``."""
    body = js.document.body
    if attr(body, "data-project-gone") == "true":
        return
    body.setAttribute("data-project-gone", "true")
    notice = h("section", {"id": "project-gone", "class_": "card gone", "role": "alert",
                           "aria-labelledby": "project-gone-heading"},
               h("h1", {"id": "project-gone-heading"}, "This project is no longer available to you"),
               h("p", {}, "Its owner removed your access, made it private or deleted it. "
                          "Your exports of it were cancelled and nothing more will be downloaded."),
               h("p", {}, h("a", {"id": "project-gone-link", "href": "/"}, "Go to your projects")))
    main = el("main")
    main.replaceChildren(notice)
    main.removeAttribute("aria-busy")
    el("project-gone-link").focus()
