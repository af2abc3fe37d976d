"""``HashingWriter``: a binary stream that hashes and counts what it forwards, and polls for a
cancel every ``POLL_BYTES``.
"""
from __future__ import annotations

import hashlib
import io
from typing import IO, Optional

from server.archive.progress import Poll

# ``poll`` runs before each further POLL_BYTES forwarded (large writes are cut into slices of
# that size), so even one big write (an overlay PNG, an XLSX) stays cancellable.
POLL_BYTES = 64 << 10


class HashingWriter(io.RawIOBase):
    """A binary stream that forwards every byte to ``inner`` while hashing (SHA-256, ``sha``)
    and counting (``size``, bytes) them. Closing it leaves ``inner`` open.

    ``poll`` (optional, no arguments) is called before each further ``POLL_BYTES`` bytes are
    forwarded; whatever it raises (a cancellation) propagates out of ``write`` with the rest
    of that write not forwarded."""

    def __init__(self, inner: IO[bytes], poll: Optional[Poll] = None) -> None:
        super().__init__()
        self.inner = inner
        self.sha = hashlib.sha256()
        self.size = 0
        self.poll = poll
        self._unpolled = 0

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        view = memoryview(data).cast("B")
        if self.poll is None:
            self._forward(view)
            return len(view)
        for start in range(0, len(view), POLL_BYTES):
            piece = view[start:start + POLL_BYTES]
            if self._unpolled >= POLL_BYTES:
                self._unpolled = 0
                self.poll()
            self._forward(piece)
            self._unpolled += len(piece)
        return len(view)

    def _forward(self, view: memoryview) -> None:
        self.sha.update(view)
        self.inner.write(view)
        self.size += len(view)
