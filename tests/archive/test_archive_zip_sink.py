"""``ZipSink``: text members, deflated on a thread or not, are the entries zipfile writes; a
cancel leaves no part of them."""
import sys
import threading
import zipfile

import numpy as np
import pytest

from server.archive.deflate import THREAD_CHUNK
from server.archive.hashing_writer import POLL_BYTES
from server.archive.zip_sink import ZipSink


class Stop(Exception):
    pass


def _text_zip(path, pieces, on_thread, tmpdir=None, poll=None):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        sink = ZipSink(zf, (2026, 11, 29, 12, 0, 0), poll=poll)
        sink.write_text("README.md", "first\n")
        with sink.text_member("annotations/données.json", deflate_on_thread=on_thread, tmpdir=tmpdir) as text:
            for piece in pieces:
                text.write(piece)
        sink.write_text("last.txt", "last\n")
    return sink.files


def test_a_text_member_deflated_on_a_thread_is_the_entry_zipfile_writes(tmp_path):
    rng = np.random.default_rng(5)
    pieces = [",\n".join(f'{{"id":{i},"xy":[{x!r},{y!r}],"µm":"{i % 7}"}}' for i, (x, y) in
                         enumerate(rng.random((n, 2)).tolist())) for n in rng.integers(1, 3000, 300).tolist()]
    assert sum(map(len, pieces)) > 8 * THREAD_CHUNK  # many hand-overs, and pieces of every size
    (tmp_path / "tmp").mkdir()
    ours = _text_zip(tmp_path / "ours.zip", pieces, True, str(tmp_path / "tmp"))
    theirs = _text_zip(tmp_path / "theirs.zip", pieces, False)
    assert ours == theirs
    assert (tmp_path / "ours.zip").read_bytes() == (tmp_path / "theirs.zip").read_bytes()  # byte for byte
    assert list((tmp_path / "tmp").iterdir()) == []  # its temporary file is gone


def test_a_cancel_inside_a_member_deflated_on_a_thread_stops_it_and_leaves_nothing(tmp_path):
    (tmp_path / "tmp").mkdir()
    polls = []

    def poll():
        polls.append(1)
        if len(polls) == 20:  # after about 20 x 64 KiB of text
            raise Stop

    pieces = ["x" * 1000 + "\n"] * 5000
    with pytest.raises(Stop):
        _text_zip(tmp_path / "a.zip", pieces, True, str(tmp_path / "tmp"), poll)
    with zipfile.ZipFile(tmp_path / "a.zip") as zf:
        assert zf.namelist() == ["README.md"] and zf.testzip() is None
    assert list((tmp_path / "tmp").iterdir()) == []
    assert not any(t.name == "zip-deflate" for t in threading.enumerate())


@pytest.mark.parametrize("on_thread", [False, True])
def test_a_cancelled_text_member_never_polls_or_writes_again(tmp_path, on_thread):
    # A cancel raised by the producer (its own checkpoint) while the text wrapper still holds
    # unflushed text: when the wrapper is collected, that text must not reach the member, nor
    # its flush call the job's checkpoint again (from a finaliser, after the job ended).
    import gc

    polls, unraisable = [], []
    old_hook = sys.unraisablehook
    sys.unraisablehook = unraisable.append
    try:
        with pytest.raises(Stop):
            with zipfile.ZipFile(tmp_path / "a.zip", "w", compression=zipfile.ZIP_DEFLATED) as zf:
                sink = ZipSink(zf, (2026, 11, 29, 12, 0, 0), poll=lambda: polls.append(1))
                with sink.text_member("m.json", deflate_on_thread=on_thread, tmpdir=str(tmp_path)) as text:
                    text.write("x" * (2 * POLL_BYTES))  # straight through: the next write polls
                    text.write("y" * 100)  # waits in the wrapper's buffer
                    raise Stop
        seen = len(polls)
        del text
        gc.collect()
    finally:
        sys.unraisablehook = old_hook
    assert len(polls) == seen and unraisable == []
