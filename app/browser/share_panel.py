"""The Share panel (R9) under the project's name, for its owner and editors: the members with
their roles (change, remove), a form to add a user by name with a role, and the project's
public flag. Everyone else sees one line saying whose project it is and what they may do.

It is a ``<details>`` disclosure of plain form controls: every control has a label, works
from the keyboard, and the server's refusals (an unknown user, the owner, a bad role) show in
place in ``#share-error`` (``role="alert"``); what succeeded shows in ``#share-status``
(``aria-live``). Requests: ``GET/POST /api/projects/{id}/members``, ``DELETE
.../members/{name}``, ``PATCH /api/projects/{id}`` ``{public}``.
"""
from __future__ import annotations

import asyncio
from typing import Any, Optional

import js  # type: ignore[import-not-found]

from app.browser.dom import Component, attr, h, set_text
from app.browser.interop import is_missing
from app.browser.net import Unreachable, request_json
from app.errors import error_text

ROLE_TEXT = {"viewer": "Viewer: sees and exports", "editor": "Editor: also renames, shares and deletes"}
ACCESS_TEXT = {"viewer": "shared with you: you can see and export it",
               "editor": "shared with you as editor: you can also rename, share and delete it",
               "public": "public: every signed-in user can see and export it"}


def access_line(project: dict) -> str:
    """Whose project this is and what the user may do, for a user who cannot share it."""
    owner = project.get("owner") or "someone"
    return f"{owner}'s project, {ACCESS_TEXT.get(str(project.get('access')), 'read-only')}."


class SharePanel(Component):
    """Mounted into ``.project-head`` for a project the user owns or edits."""

    def __init__(self, project: dict) -> None:
        super().__init__()
        self.project_id = int(project["id"])
        self.public = bool(project.get("public"))
        self.members: list[dict] = []
        self.busy = False

    def build(self) -> Any:
        options = [h("option", {"value": role}, text) for role, text in ROLE_TEXT.items()]
        return h(
            "details", {"id": "share-panel", "class_": "share"},
            h("summary", {"id": "share-summary"}, "Share this project"),
            h("ul", {"id": "share-members", "class_": "members", "aria-label": "People with access"}),
            h("form", {"id": "share-form", "class_": "share-form", "novalidate": True},
              h("label", {"for": "share-username"}, "Username"),
              h("input", {"id": "share-username", "name": "username", "autocomplete": "off", "spellcheck": "false",
                          "required": True, "aria-describedby": "share-error"}),
              h("label", {"for": "share-role"}, "Role"),
              h("select", {"id": "share-role", "name": "role"}, *options),
              h("button", {"id": "share-add", "type": "submit"}, "Share")),
            h("p", {"id": "share-error", "class_": "field-error", "role": "alert", "hidden": True}),
            h("p", {"id": "share-status", "class_": "muted", "aria-live": "polite"}),
            h("div", {"class_": "choice"},
              h("input", {"type": "checkbox", "id": "share-public", "checked": self.public,
                          "aria-describedby": "share-public-desc"}),
              h("label", {"for": "share-public"}, "Public"),
              h("p", {"id": "share-public-desc", "class_": "desc"},
                "Every signed-in user can see and export it; only its owner and editors can change it.")),
        )

    def setup(self) -> None:
        self.listen(self.find("#share-form"), "submit", self._on_submit)
        self.listen(self.find("#share-members"), "click", self._on_click)
        self.listen(self.find("#share-members"), "change", self._on_role_change)
        self.listen(self.find("#share-public"), "change", self._on_public)
        self._run(self._reload())

    # -- requests ---------------------------------------------------------------------
    def _run(self, work: Any) -> None:
        asyncio.ensure_future(work)

    async def _call(self, method: str, path: str, body: Optional[dict] = None) -> Optional[tuple[int, Any]]:
        """The answer, or None after showing that the server could not be reached."""
        try:
            return await request_json(method, path, body)
        except Unreachable:
            self._error("The server cannot be reached; try again in a moment.")
            return None

    async def _reload(self) -> None:
        answer = await self._call("GET", f"/api/projects/{self.project_id}/members")
        if answer is None or not self.mounted:
            return
        status, body = answer
        if status == 200 and isinstance(body, list):
            self.members = body
            self._render()
        else:
            self._error(error_text(body, status))

    async def _change(self, method: str, path: str, body: Optional[dict], done: str) -> bool:
        if self.busy:
            return False
        self.busy = True
        try:
            answer = await self._call(method, path, body)
        finally:
            self.busy = False
        if answer is None or not self.mounted:
            return False
        status, reply = answer
        if status >= 400:
            self._error(error_text(reply, status))
            return False
        self._error("")
        set_text(self.find("#share-status"), done)
        await self._reload()
        return True

    # -- events -------------------------------------------------------------------------
    def _on_submit(self, event: Any) -> None:
        event.preventDefault()
        field = self.find("#share-username")
        username = str(field.value).strip()
        role = str(self.find("#share-role").value)
        if not username:
            self._error("Enter the username of the person to share with.")
            field.focus()
            return

        async def share() -> None:
            if await self._change("POST", f"/api/projects/{self.project_id}/members",
                                  {"username": username, "role": role}, f"{username} is now {role}."):
                field.value = ""
            else:
                field.focus()

        self._run(share())

    def _on_click(self, event: Any) -> None:
        target = event.target.closest("[data-action='remove']")
        if is_missing(target):
            return
        username = attr(target, "data-username")
        self._run(self._change("DELETE", f"/api/projects/{self.project_id}/members/{username}", None,
                               f"{username} no longer has access."))

    def _on_role_change(self, event: Any) -> None:
        target = event.target
        username = attr(target, "data-username")
        if not username:
            return
        role = str(target.value)
        self._run(self._change("POST", f"/api/projects/{self.project_id}/members",
                               {"username": username, "role": role}, f"{username} is now {role}."))

    def _on_public(self, event: Any) -> None:
        box = event.target
        public = bool(box.checked)

        async def publish() -> None:
            done = "Every signed-in user can now see it." if public else "Only its members can see it now."
            if not await self._change("PATCH", f"/api/projects/{self.project_id}", {"public": public}, done):
                box.checked = not public

        self._run(publish())

    # -- rendering ------------------------------------------------------------------------
    def _error(self, message: str) -> None:
        if not self.mounted:
            return
        node = self.find("#share-error")
        set_text(node, message)
        node.hidden = not message

    def _render(self) -> None:
        items = []
        for member in self.members:
            name, role = str(member.get("username", "")), str(member.get("role", ""))
            if role == "owner":
                items.append(h("li", {"class_": "member", "data": {"username": name}},
                               h("span", {"class_": "member-name"}, name), h("span", {"class_": "muted"}, "owner")))
                continue
            select_id = f"share-role-{name}"
            select = h("select", {"id": select_id, "data": {"username": name}},
                       *[h("option", {"value": r, "selected": r == role}, r) for r in ROLE_TEXT])
            items.append(h("li", {"class_": "member", "data": {"username": name}},
                           h("label", {"class_": "member-name", "for": select_id}, name), select,
                           h("button", {"type": "button", "class_": "linkish", "aria-label": f"Remove {name}",
                                        "data": {"action": "remove", "username": name}}, "Remove")))
        self.find("#share-members").replaceChildren(*items)
        others = len(self.members) - 1
        set_text(self.find("#share-summary"),
                 "Share this project" if others <= 0 else f"Shared with {others} " + ("person" if others == 1 else "people"))


def mount_access(project: dict) -> Optional[SharePanel]:
    """The Share panel for an owner or editor (returned, to unmount on close), else the line
    saying whose project it is (``#project-access``)."""
    head = js.document.querySelector(".project-head")
    if is_missing(head):
        return None
    if project.get("access") in ("owner", "editor"):
        panel = SharePanel(project)
        panel.mount(head)
        return panel
    line = h("p", {"id": "project-access", "class_": "muted"}, access_line(project))
    head.append(line)
    return None

