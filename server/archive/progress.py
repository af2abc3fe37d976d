"""``Progress``: work units of an export turned into the overall fraction its checkpoint reports.

``Checkpoint(stage, fraction, message)`` is the caller's progress report and cancellation
check in one (the job runner's raises to cancel); ``Poll()`` is the same check without new
arguments, repeated inside long steps.
"""
from __future__ import annotations

from typing import Callable, Optional

Checkpoint = Callable[[str, float, str], None]
Poll = Callable[[], None]


class Progress:
    """Turns work units into the overall fraction passed to ``checkpoint(stage, fraction,
    message)``: ``report(stage, within, message)`` reports ``done + within`` of ``total`` units
    (capped at 1.0, and never below what was reported before); ``advance(units)`` moves
    ``done`` on once a step is finished; ``poll()`` repeats the last report unchanged, so that
    the checkpoint (the caller's cancellation check) also runs inside long steps. Whatever the
    checkpoint raises propagates out of ``report`` and ``poll`` unchanged."""

    def __init__(self, checkpoint: Checkpoint, total: float) -> None:
        self.checkpoint = checkpoint
        self.total = max(total, 1.0)
        self.done = 0.0
        self._last: Optional[tuple[str, float, str]] = None

    def report(self, stage: str, within: float, message: str) -> None:
        fraction = min(1.0, (self.done + within) / self.total)
        if self._last is not None:
            fraction = max(fraction, self._last[1])
        self._last = (stage, fraction, message)
        self.checkpoint(stage, fraction, message)

    def advance(self, units: float) -> None:
        self.done += units

    def poll(self) -> None:
        if self._last is not None:
            self.checkpoint(*self._last)
