"""Who asked for an export: the browser's id, and the start token that carries it (C10).

Every tab of one browser (one ``localStorage``) shares a browser id, kept under
``BROWSER_KEY``; a start request's ``start_token`` (R1: kept on the job and in its events)
begins with it: ``<browser id>.<tab id>.<n>``. So any tab can tell from a job whether its
own browser started it, and only that browser downloads it unasked; the others follow the
job and offer it. A job started without a token (by a script) belongs to no browser.
"""
from __future__ import annotations

import re
from typing import Callable, Optional

from app.ports import Storage

BROWSER_KEY = "cellhub.export.v1.browser"
BROWSER_ID = re.compile(r"[A-Za-z0-9_-]{1,16}")
"""A browser id: up to 16 of ``A-Za-z0-9_-`` (no ``.``, so it ends where the token's first
part ends); the page makes 16 hex digits."""


def browser_id(storage: Storage, make_id: Callable[[], str]) -> str:
    """This browser's id: the one stored under ``BROWSER_KEY``, else ``make_id()`` stored
    there (an unreadable or malformed one is replaced)."""
    stored = storage.get(BROWSER_KEY)
    if stored is not None and BROWSER_ID.fullmatch(stored):
        return stored
    made = make_id()
    if not BROWSER_ID.fullmatch(made):
        raise ValueError(f"not a browser id: {made!r}")
    storage.set(BROWSER_KEY, made)
    return made


def start_token(browser: str, tab_id: str, n: int) -> str:
    """The token of this tab's ``n``-th start: ``<browser>.<tab_id>.<n>``, cut to R1's 64
    characters (the tab id is what gives way)."""
    tail = f".{n}"
    return f"{browser}.{tab_id}"[: 64 - len(tail)] + tail


def token_browser(token: Optional[str]) -> Optional[str]:
    """The browser id a start token begins with (None for no token)."""
    return token.split(".", 1)[0] if token else None


def started_in(browser: Optional[str], token: Optional[str]) -> bool:
    """Whether the start named ``token`` was made in ``browser``."""
    return browser is not None and token_browser(token) == browser
