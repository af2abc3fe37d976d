"""JSON parsed within bounds, refusals naming the field.

RFC 8259 leaves the range and precision of numbers and the depth of nesting to the
implementation; Python's ``json`` accepts ``NaN``/``Infinity`` (not JSON at all), turns
``1e400`` into ``inf``, parses integers of any length (and fails with ``ValueError`` past
4300 digits) and recurses once per level. :func:`load_json` accepts what JSON allows within:

- numbers finite and within the range of a float (an IEEE 754 double, what every JSON
  library and the browser read them as);
- integers of at most ``MAX_INT_DIGITS`` (20) digits: every 64-bit integer fits, and no
  number a project holds (ids, sizes, counts) needs more;
- nesting of at most ``MAX_DEPTH`` (64) levels: COCO needs 4, export options 2.

A document outside them raises :class:`JsonBoundsError` whose ``problems`` are
``(field, reason)`` pairs; ``field`` is a path in the document, ``annotations[3].bbox[0]``
(the document's own name when the problem has no narrower place).
"""
from __future__ import annotations

import json
import math
from typing import Any, Union

MAX_DEPTH = 64
MAX_INT_DIGITS = 20
MAX_PROBLEMS = 10
"""Problems reported at most (a document full of NaN gets ten lines and a count)."""


class JsonBoundsError(ValueError):
    """The document is not JSON within the bounds; ``problems`` lists ``(field, reason)``."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{where}: {reason}" for where, reason in problems))


class _Refused:
    """What a parse hook puts in place of a number out of bounds (found by :func:`_walk`)."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


class _Hooks:
    """``json.loads`` hooks that never raise: out-of-bound numbers become ``_Refused``."""

    def __init__(self) -> None:
        self.refused = 0

    def _refuse(self, reason: str) -> _Refused:
        self.refused += 1
        return _Refused(reason)

    def constant(self, text: str) -> _Refused:
        return self._refuse(f"{text} is not a number JSON allows (finite numbers only)")

    def number(self, text: str) -> Union[float, _Refused]:
        value = float(text)
        if math.isfinite(value):
            return value
        return self._refuse(f"{_short(text)} is beyond the range of a float (about 1.8e308)")

    def integer(self, text: str) -> Union[int, _Refused]:
        digits = len(text) - text.startswith("-")
        if digits > MAX_INT_DIGITS:
            return self._refuse(f"an integer of {digits} digits (at most {MAX_INT_DIGITS})")
        return int(text)


def _short(text: str) -> str:
    return text if len(text) <= 24 else f"{text[:12]}...{text[-8:]} ({len(text)} characters)"


def _join(path: str, key: Union[str, int]) -> str:
    if isinstance(key, int):
        return f"{path}[{key}]"
    return f"{path}.{key}" if path else key


def _walk(value: Any, root: str, problems: list[tuple[str, str]], limit: int) -> int:
    """Find the refused numbers and the nesting past ``MAX_DEPTH`` in ``value``, adding up to
    ``limit`` problems; returns how many there were in all."""
    found = 0
    stack: list[tuple[Any, str, int]] = [(value, "", 0)]
    while stack:
        node, path, depth = stack.pop()
        if isinstance(node, _Refused):
            found += 1
            if len(problems) < limit:
                problems.append((path or root, node.reason))
            continue
        if isinstance(node, dict):
            items = list(node.items())
        elif isinstance(node, list):
            items = list(enumerate(node))
        else:
            continue
        if depth >= MAX_DEPTH:
            found += 1
            if len(problems) < limit:
                problems.append((path or root, f"nested deeper than {MAX_DEPTH} levels"))
            continue
        for key, child in reversed(items):
            if isinstance(child, (dict, list, _Refused)):
                stack.append((child, _join(path, key), depth + 1))
    return found


def _depth_over(value: Any, limit: int) -> bool:
    """True when containers in ``value`` nest more than ``limit`` levels (walks containers
    only; numbers and strings are skipped in C by ``filter``)."""
    level = [value] if isinstance(value, (dict, list)) else []
    depth = 0
    while level:
        depth += 1
        if depth > limit:
            return True
        nxt: list[Any] = []
        for node in level:
            children = node.values() if isinstance(node, dict) else node
            nxt.extend(c for c in children if isinstance(c, (dict, list)))
        level = nxt
    return False


def load_json(text: Union[str, bytes], name: str = "body") -> Any:
    """Parse ``text`` (UTF-8 bytes or str) as JSON within the bounds of the module docstring.

    Raises :class:`JsonBoundsError` (problems named by path; ``name`` stands for the whole
    document) for numbers or nesting out of bounds, and ``json.JSONDecodeError`` or
    ``UnicodeDecodeError`` for text that is not JSON at all."""
    hooks = _Hooks()
    try:
        value = json.loads(text, parse_constant=hooks.constant, parse_float=hooks.number,
                           parse_int=hooks.integer)
    except RecursionError:
        raise JsonBoundsError([(name, f"nested deeper than {MAX_DEPTH} levels")]) from None
    if hooks.refused or _depth_over(value, MAX_DEPTH):
        problems: list[tuple[str, str]] = []
        found = _walk(value, name, problems, MAX_PROBLEMS)
        if found > len(problems):
            problems.append((name, f"... and {found - len(problems)} more such problems"))
        raise JsonBoundsError(problems)
    return value
