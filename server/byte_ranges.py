"""The one byte range a download answers (RFC 9110, sections 14.1.2, 13.1.5 and 14.2).

``requested_range`` reads a request's ``Range`` and ``If-Range`` for a representation of
``size`` bytes whose strong entity tag is ``etag``:

- no ``Range``, one the server ignores, or an ``If-Range`` that is not exactly ``etag``
  (a date or a weak or other tag: the file may have changed, so it is sent whole): None,
  answer 200 with everything;
- one satisfiable range ``bytes=first-last``, ``bytes=first-`` or ``bytes=-suffix``: that
  range, clipped to the file, answer 206;
- one range that starts at or after the end (or a zero-length suffix): ``Unsatisfiable``,
  answer 416 with ``Content-Range: bytes */size``.

Ignored (RFC 9110 lets a server ignore ``Range``): another unit than ``bytes``, bad syntax,
``last < first``, and several ranges (a resuming client asks for one; multipart answers
are not offered).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

_ONE_RANGE = re.compile(r"bytes=(\d*)-(\d*)")
_MAX_DIGITS = 19  # larger numbers than any file; refuse them before int() does the work


class Unsatisfiable(Exception):
    """The range starts past the end of the file: answer 416."""


@dataclass(frozen=True)
class ByteRange:
    """Bytes ``first`` through ``last`` (both included) of the file."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        return f"bytes {self.first}-{self.last}/{size}"


def requested_range(range_header: Optional[str], if_range: Optional[str], etag: str, size: int) -> Optional[ByteRange]:
    """The range to send (see the module docstring); raises ``Unsatisfiable``."""
    if not range_header or (if_range is not None and if_range.strip() != etag):
        return None
    match = _ONE_RANGE.fullmatch(range_header.strip().replace(" ", ""))
    if match is None:
        return None
    first_text, last_text = match.groups()
    if len(first_text) > _MAX_DIGITS or len(last_text) > _MAX_DIGITS or not (first_text or last_text):
        return None
    if not first_text:  # a suffix: the last N bytes
        suffix = int(last_text)
        if suffix == 0 or size == 0:
            raise Unsatisfiable(f"bytes=-0 of {size}")
        return ByteRange(max(0, size - suffix), size - 1)
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    if first >= size:
        raise Unsatisfiable(f"bytes from {first} of {size}")
    return ByteRange(first, min(int(last_text), size - 1) if last_text else size - 1)
