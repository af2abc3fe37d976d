"""What the archive writer and its metrics child process say to each other (``metrics_process``
is the parent's side, ``metrics_child`` the child's).

The parent appends pickled frames to a spool file in its temporary folder and, after each,
writes one byte to the child's stdin, so the child knows a whole frame is there:
``Start`` once, then ``Rows`` any number of times, then ``Close``. The rows wait in the spool
file, not in memory and not in a pipe, so the parent never waits for the child while it
computes them (``server/DECISIONS.md``, "R2/R5 (metrics process)"). End of stdin before
``Close`` means the parent gave up (or died): the child leaves no file. The child answers
one pickled frame on its stdout once it is done: ``Finished`` or ``Failed``.

Light on purpose: the child imports this module first, and nothing here pulls in numpy,
shapely or pydantic.
"""
from __future__ import annotations

import os
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Optional, Union

from server.archive.deflate import Deflated

FORMATS = ("csv", "json", "xlsx")


@dataclass(frozen=True)
class Start:
    """Write ``metrics.<fmt>`` into ``folder`` (absolute) for each of ``formats`` (a subset of
    ``FORMATS``, in that order); ``columns``: ``metrics.column_docs``; ``meta``: the JSON
    file's extra keys; ``deflate``: also deflate each finished file for the archive."""

    folder: str
    formats: list[str]
    columns: list[dict]
    meta: dict[str, Any]
    deflate: bool


@dataclass(frozen=True)
class Rows:
    """Rows as value lists in column order (see ``metrics_io``)."""

    rows: list[list[Any]]


@dataclass(frozen=True)
class Close:
    """No more rows: finish the files."""


@dataclass(frozen=True)
class Finished:
    """Every file is complete; with ``Start.deflate``, ``deflated`` maps each format to its file
    deflated for the archive (``deflated_file``; the plain file is not kept), else it is empty."""

    deflated: dict[str, Deflated] = field(default_factory=dict)


@dataclass(frozen=True)
class Failed:
    """The child could not write the files (and removed them): ``text`` says why; ``errno`` is
    its ``OSError``'s when that was the error (a full disk reads as one), else None."""

    text: str
    errno: Optional[int] = None


Frame = Union[Start, Rows, Close]
Answer = Union[Finished, Failed]


def metrics_file(folder: str | os.PathLike, fmt: str) -> Path:
    """Where the file of ``fmt`` (``csv``, ``json``, ``xlsx``) goes: ``folder/metrics.<fmt>``."""
    return Path(folder) / f"metrics.{fmt}"


def deflated_file(path: Path) -> Path:
    """Where a file's deflated stream goes: beside it, ``.deflate`` added to its name."""
    return path.with_name(path.name + ".deflate")


def remove_file(path: str | os.PathLike) -> None:
    """Remove ``path`` if it is there."""
    try:
        os.remove(path)
    except FileNotFoundError:
        pass


def send_frame(spool: IO[bytes], signal: IO[bytes], frame: Frame) -> None:
    """Append ``frame`` to ``spool`` and then tell the child through ``signal`` (its stdin).
    Raises ``BrokenPipeError`` when the child has gone."""
    pickle.dump(frame, spool, protocol=pickle.HIGHEST_PROTOCOL)
    spool.flush()  # the whole frame is in the file before the child hears of it
    signal.write(b".")
    signal.flush()


def receive_frame(signal: IO[bytes], spool: IO[bytes]) -> Frame:
    """The next frame (waiting for its byte on ``signal``). Raises ``EOFError`` when the
    parent closed ``signal`` (it gave up or died)."""
    if not signal.read(1):
        raise EOFError
    return pickle.load(spool)


def write_answer(stdout: IO[bytes], answer: Answer) -> None:
    """The child's one answer."""
    pickle.dump(answer, stdout)
    stdout.flush()


def read_answer(out: bytes) -> Optional[Answer]:
    """The child's answer from its whole stdout, or None when there is none (it died)."""
    try:
        answer = pickle.loads(out)
    except Exception:  # noqa: BLE001 - nothing, or a cut frame: the child died
        return None
    return answer if isinstance(answer, (Finished, Failed)) else None
