"""``server.byte_ranges.requested_range``: the one range a download answers (RFC 9110)."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from server.byte_ranges import ByteRange, Unsatisfiable, requested_range

TAG = '"abc"'


@pytest.mark.parametrize("header, if_range, size, expected", [
    (None, None, 10, None),
    ("bytes=0-3", None, 10, ByteRange(0, 3)),
    ("bytes=4-", None, 10, ByteRange(4, 9)),
    ("bytes=-3", None, 10, ByteRange(7, 9)),
    ("bytes=-30", None, 10, ByteRange(0, 9)),
    ("bytes=2-99", None, 10, ByteRange(2, 9)),
    ("bytes = 2 - 5", None, 10, ByteRange(2, 5)),
    ("bytes=9-9", TAG, 10, ByteRange(9, 9)),
    ("bytes=0-3", '"other"', 10, None),            # If-Range names another version: all of it
    ("bytes=0-3", 'W/"abc"', 10, None),            # a weak tag never matches
    ("bytes=0-3", "Tue, 15 Nov 1994 08:12:31 GMT", 10, None),  # a date: we send no Last-Modified
    ("bytes=0-1,4-5", None, 10, None),             # several ranges: ignored
    ("items=0-3", None, 10, None),
    ("bytes=5-3", None, 10, None),
    ("bytes=-", None, 10, None),
    ("bytes=a-3", None, 10, None),
    ("bytes=" + "9" * 20 + "-", None, 10, None),
])
def test_ranges_that_are_answered_or_ignored(header, if_range, size, expected):
    assert requested_range(header, if_range, TAG, size) == expected


@pytest.mark.parametrize("header, size", [("bytes=10-", 10), ("bytes=10-20", 10), ("bytes=-0", 10), ("bytes=0-", 0)])
def test_ranges_past_the_end_are_unsatisfiable(header, size):
    with pytest.raises(Unsatisfiable):
        requested_range(header, None, TAG, size)


@given(size=st.integers(1, 500), first=st.integers(0, 600), last=st.one_of(st.none(), st.integers(0, 600)))
def test_a_satisfiable_range_is_the_slice_it_names(size, first, last):
    data = bytes(range(256)) * 2
    data = data[:size]
    header = f"bytes={first}-{'' if last is None else last}"
    try:
        part = requested_range(header, TAG, TAG, size)
    except Unsatisfiable:
        assert first >= size
        return
    if last is not None and last < first:
        assert part is None
        return
    end = size if last is None else min(last + 1, size)
    assert data[part.first:part.last + 1] == data[first:end] and part.length == end - first
    assert part.content_range(size) == f"bytes {first}-{end - 1}/{size}"
