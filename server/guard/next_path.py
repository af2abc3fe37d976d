"""Where the sign-in page may send the browser afterwards (``/signin?next=...``).

Only a path on this site: it starts with ``/`` and holds no ``//`` and no backslash
anywhere (browsers read ``//host`` and ``/\\host`` as another site), no scheme (a ``:``
before the first ``/``, impossible after the first rule), and no control or whitespace
character anywhere (the URL parser drops tabs and newlines, so ``/\\t/evil.example``
would become ``//evil.example``). Anything else becomes ``/``.
"""
from __future__ import annotations

import re

MAX_LENGTH = 2000
_SAFE = re.compile(r"(?!.*//)/[^\\\s\x00-\x1f\x7f-\x9f\u2028\u2029\ufeff]*")


def safe_next(raw: str | None) -> str:
    """``raw`` when it is a same-origin path by the rules above, else ``"/"``."""
    if not raw or len(raw) > MAX_LENGTH or not _SAFE.fullmatch(raw):
        return "/"
    return raw
