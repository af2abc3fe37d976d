"""``HashingWriter`` polls for a cancel every 64 KiB; ``Progress`` never goes back."""
import hashlib
import io

import pytest

from server.archive.hashing_writer import POLL_BYTES, HashingWriter
from server.archive.progress import Progress


class Stop(Exception):
    pass


def test_a_big_write_is_polled_every_64_kib_and_stops_where_the_poll_raises():
    inner = io.BytesIO()
    polls = []

    def poll():
        polls.append(inner.tell())
        if len(polls) == 2:
            raise Stop

    writer = HashingWriter(inner, poll)
    data = bytes(range(256)) * (5 * POLL_BYTES // 256)  # five slices in one write
    with pytest.raises(Stop):
        writer.write(data)
    assert polls == [POLL_BYTES, 2 * POLL_BYTES]  # before the 2nd and the 3rd slice
    assert inner.getvalue() == data[:2 * POLL_BYTES]
    assert writer.size == 2 * POLL_BYTES and writer.sha.hexdigest() == hashlib.sha256(data[:2 * POLL_BYTES]).hexdigest()


def test_small_writes_are_polled_once_per_64_kib():
    polls = []
    writer = HashingWriter(io.BytesIO(), lambda: polls.append(1))
    per_poll = -(-POLL_BYTES // 1000)  # writes of 1000 bytes that make 64 KiB
    for _ in range(4 * per_poll):
        writer.write(b"x" * 1000)
    assert len(polls) == 3  # before the writes after the 1st, 2nd and 3rd 64 KiB
    writer.write(b"x")
    assert len(polls) == 4


def test_progress_poll_repeats_the_last_report_and_never_goes_back():
    calls = []
    progress = Progress(lambda *call: calls.append(call), total=10)
    progress.poll()  # nothing reported yet: nothing to repeat
    progress.report("annotations", 3, "a")
    progress.poll()
    progress.report("annotations", 2, "b")  # a smaller fraction than before is held at 0.3
    assert calls == [("annotations", 0.3, "a"), ("annotations", 0.3, "a"), ("annotations", 0.3, "b")]
