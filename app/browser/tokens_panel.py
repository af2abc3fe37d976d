"""The "API tokens" panel: make a personal API token for scripts and notebooks (its secret
shown once, with a Copy button), list the tokens (never a secret) and revoke them
(``/api/tokens``; ``app.api_tokens`` holds the shared models).

Everything goes through the page's async ``request_json`` (never a blocking call). The name
is checked with the shared ``TokenRequest`` before anything is sent; the server's 4xx
answers are shown as its own words (``app.errors.error_text``).
"""
from __future__ import annotations

import asyncio
from datetime import datetime, timezone
from typing import Any, Optional

import js  # type: ignore[import-not-found]
from pydantic import ValidationError

from app.api_tokens import EXPIRY_DAYS, TokenRequest, expiry_after
from app.browser.dom import Component, attr, h, set_text
from app.browser.interop import is_missing
from app.browser.net import Unreachable, request_json
from app.browser.texts import token_summary
from app.errors import error_text, validation_errors

TOKENS_PATH = "/api/tokens"


def _expiry_label(days: Optional[int]) -> str:
    return "Never expires" if days is None else f"{days} days"


class TokensPanel(Component):
    """The panel's form, the secret of the token just made, and the list of tokens."""

    def __init__(self) -> None:
        super().__init__()
        self.busy = False

    def build(self) -> Any:
        choices = [h("option", {"value": "" if d is None else d}, _expiry_label(d)) for d in EXPIRY_DAYS]
        form = h("form", {"id": "token-form", "class_": "token-form", "novalidate": True},
                 h("div", {"class_": "field"},
                   h("label", {"for": "token-name"}, "Name"),
                   h("input", {"id": "token-name", "type": "text", "maxlength": 100, "autocomplete": "off",
                               "placeholder": "e.g. analysis notebook", "aria-describedby": "token-error"})),
                 h("div", {"class_": "field"},
                   h("label", {"for": "token-expiry"}, "Expires after"),
                   h("select", {"id": "token-expiry"}, *choices)),
                 h("button", {"id": "token-create", "type": "submit"}, "Create token"))
        fresh = h("div", {"id": "token-fresh", "class_": "token-fresh", "hidden": True, "role": "status"},
                  h("p", {}, "Copy this token now: it is shown only once. Scripts send it as ",
                    h("code", {}, "Authorization: Bearer …"), "; the client reads it from ",
                    h("code", {}, "CELLHUB_TOKEN"), "."),
                  h("div", {"class_": "token-secret"},
                    h("input", {"id": "token-secret", "type": "text", "readonly": True, "aria-label": "New API token"}),
                    h("button", {"id": "token-copy", "type": "button"}, "Copy")))
        return h("div", {"id": "tokens-panel"},
                 form,
                 h("p", {"id": "token-error", "class_": "field-error", "hidden": True}),
                 fresh,
                 h("p", {"id": "tokens-empty", "class_": "muted"}, "Loading tokens…"),
                 h("ul", {"id": "token-list", "class_": "token-list"}))

    def setup(self) -> None:
        self.listen(self.find("#token-form"), "submit", self._on_submit)
        self.listen(self.find("#token-copy"), "click", self._on_copy)
        self.listen(self.find("#token-list"), "click", self._on_list_click)
        asyncio.ensure_future(self.refresh())

    # -- events
    def _on_submit(self, event: Any) -> None:
        event.preventDefault()
        if not self.busy:
            asyncio.ensure_future(self.create())

    def _on_copy(self, event: Any) -> None:
        secret = self.find("#token-secret")
        secret.select()
        try:
            js.navigator.clipboard.writeText(secret.value)
        except Exception:  # noqa: BLE001 - no clipboard access: the text stays selected
            pass

    def _on_list_click(self, event: Any) -> None:
        target = event.target.closest("[data-token-id]")
        if not is_missing(target) and not self.busy:
            asyncio.ensure_future(self.revoke(int(attr(target, "data-token-id")), attr(target, "data-token-name")))

    # -- requests
    async def create(self) -> None:
        name = str(self.find("#token-name").value)
        raw_days = str(self.find("#token-expiry").value)
        expires = expiry_after(int(raw_days) if raw_days else None, datetime.now(timezone.utc))
        try:
            request = TokenRequest.model_validate({"name": name, "expires_at": expires})
        except ValidationError as exc:
            self._error(error_text(validation_errors(exc), 422))
            return
        status, body = await self._call("POST", TOKENS_PATH, request.model_dump(mode="json"))
        if status == 201 and isinstance(body, dict):
            self.find("#token-name").value = ""
            self.find("#token-secret").value = str(body.get("token", ""))
            self.find("#token-fresh").hidden = False
            self.find("#token-secret").select()
            await self.refresh()
        elif status is not None:
            self._error(error_text(body, status))

    async def revoke(self, token_id: int, name: str) -> None:
        if not js.confirm(f"Revoke the API token “{name}”? Scripts using it stop working at once."):
            return
        status, body = await self._call("DELETE", f"{TOKENS_PATH}/{token_id}")
        if status is not None and status != 200:
            self._error(error_text(body, status))
        self.find("#token-fresh").hidden = True
        await self.refresh()

    async def refresh(self) -> None:
        status, body = await self._call("GET", TOKENS_PATH)
        if status == 200 and isinstance(body, list):
            self._render(body)
        elif status is not None:
            self._error(error_text(body, status))

    async def _call(self, method: str, path: str, body: Any = None) -> tuple[Optional[int], Any]:
        """``(status, body)``; ``(None, None)`` when the server did not answer (said so)."""
        self.busy = True
        self.find("#token-create").disabled = True
        try:
            status, answer = await request_json(method, path, body)
        except Unreachable:
            self._error("The server cannot be reached; try again in a moment.")
            return None, None
        finally:
            self.busy = False
            if self.mounted:
                self.find("#token-create").disabled = False
        self._error("")
        return status, answer

    # -- rendering
    def _error(self, text: str) -> None:
        if not self.mounted:
            return
        node = self.find("#token-error")
        set_text(node, text)
        node.hidden = not text

    def _render(self, tokens: list) -> None:
        if not self.mounted:
            return
        now = float(js.Date.now())
        empty = self.find("#tokens-empty")
        set_text(empty, "" if tokens else "No API tokens yet.")
        empty.hidden = bool(tokens)
        rows = []
        for token in tokens:
            name = str(token.get("name", ""))
            rows.append(h("li", {"class_": "token-item", "data": {"status": "expired" if token.get("expired") else "ok"}},
                          h("span", {"class_": "token-name", "text": name}),
                          h("span", {"class_": "token-meta muted", "text": token_summary(token, now)}),
                          h("button", {"type": "button", "class_": "linkish",
                                       "data": {"token-id": token.get("id"), "token-name": name},
                                       "aria-label": f"Revoke the token {name}"}, "Revoke")))
        self.find("#token-list").replaceChildren(*rows)
