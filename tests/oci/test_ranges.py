"""Content-Range of upload chunks and Range of blob reads, against blob sizes."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci.ranges import (
    ByteRange,
    RangeNotSatisfiable,
    parse_content_range,
    parse_range,
    upload_range_header,
)
from tests.oci import deterministic

positions = st.integers(min_value=0, max_value=10**12)
sizes = st.integers(min_value=0, max_value=10**12)
small_sizes = st.integers(min_value=0, max_value=1000)
# Range headers, well formed or not: first-pos and last-pos each present or absent.
_number = st.one_of(st.just(""), st.integers(min_value=0, max_value=2000).map(str))
range_headers = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", _number, _number),
    st.text(alphabet="bytes=0123456789-, ", max_size=20),
)


# -- Content-Range of upload chunks -------------------------------------------------------


@deterministic
@given(positions, positions)
def test_chunk_range_round_trips_in_every_accepted_form(a: int, b: int) -> None:
    start, end = min(a, b), max(a, b)
    for text in (
        f"{start}-{end}",
        f"bytes {start}-{end}/{end + 1}",
        f"bytes {start}-{end}/*",
        f"bytes={start}-{end}",
        f"  {start}-{end} ",
    ):
        parsed = parse_content_range(text)
        assert parsed == ByteRange(start, end), text
        assert parsed.length == end - start + 1


@deterministic
@given(positions, positions)
def test_reversed_chunk_range_is_refused(a: int, b: int) -> None:
    if a == b:
        return
    assert parse_content_range(f"{max(a, b)}-{min(a, b)}") is None


@pytest.mark.parametrize(
    "text",
    ["", "-", "0-", "-5", "a-b", "0-5-6", "0 - 5", "bytes 0-5/x", "items 0-5", "0-5/", "0-5,7-8"],
)
def test_malformed_chunk_ranges_are_refused(text: str) -> None:
    assert parse_content_range(text) is None


def test_chunk_range_numbers_are_bounded() -> None:
    assert parse_content_range("0-" + "9" * 20) is None


def test_chunk_range_digits_are_ascii() -> None:
    assert parse_content_range("\u0661-\u0662") is None
    assert parse_range("bytes=\u0661-\u0662", 100) is None


@deterministic
@given(st.integers(min_value=0, max_value=10**12))
def test_upload_range_header_describes_what_the_upload_holds(size: int) -> None:
    header = upload_range_header(size)
    parsed = parse_content_range(header)
    assert parsed is not None
    if size == 0:
        assert header == "0-0"  # what registry:2 sends for an empty upload
    else:
        assert parsed == ByteRange(0, size - 1)
        assert parsed.length == size


# -- Range of blob reads ------------------------------------------------------------------


@deterministic
@given(range_headers, small_sizes)
def test_a_parsed_range_always_lies_within_the_blob(header: str, size: int) -> None:
    try:
        parsed = parse_range(header, size)
    except RangeNotSatisfiable:
        return
    if parsed is None:
        return
    assert 0 <= parsed.start <= parsed.end < size
    assert 1 <= parsed.length <= size


@deterministic
@given(st.integers(min_value=0, max_value=2000), st.integers(min_value=0, max_value=2000), sizes)
def test_closed_ranges_clamp_or_are_unsatisfiable(first: int, last: int, size: int) -> None:
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None
    elif first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
    else:
        assert parse_range(header, size) == ByteRange(first, min(last, size - 1))


@deterministic
@given(st.integers(min_value=1, max_value=5000), st.integers(min_value=1, max_value=5000))
def test_suffix_range_selects_the_last_bytes(suffix: int, size: int) -> None:
    parsed = parse_range(f"bytes=-{suffix}", size)
    assert parsed == ByteRange(max(0, size - suffix), size - 1)
    assert parsed.length == min(suffix, size)


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        ("bytes=0-0", 10, ByteRange(0, 0)),
        ("bytes=0-9", 10, ByteRange(0, 9)),
        ("bytes=0-99", 10, ByteRange(0, 9)),
        ("bytes=5-", 10, ByteRange(5, 9)),
        ("bytes=9-", 10, ByteRange(9, 9)),
        ("bytes=-1", 10, ByteRange(9, 9)),
        ("bytes=-10", 10, ByteRange(0, 9)),
        ("bytes=-100", 10, ByteRange(0, 9)),
        (" bytes=2-3 ", 10, ByteRange(2, 3)),
    ],
)
def test_range_examples(header: str, size: int, expected: ByteRange) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"),
    [("bytes=10-20", 10), ("bytes=11-11", 10), ("bytes=0-5", 0), ("bytes=-5", 0), ("bytes=-0", 10)],
)
def test_unsatisfiable_ranges(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=10-", 10), ("bytes=11-", 10), ("bytes=0-", 0)]
)
def test_open_range_past_the_end_is_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable):
        parse_range(header, size)


@pytest.mark.parametrize(
    "header",
    [
        "",
        "bytes=",
        "bytes=-",
        "bytes=5-2",
        "bytes=0-1,3-4",  # several ranges: served whole, as RFC 9110 allows
        "bytes=a-b",
        "items=0-1",
        "bytes 0-1",
        "bytes=0-1/10",
        "bytes=" + "9" * 20 + "-",
    ],
)
def test_ignored_ranges(header: str) -> None:
    assert parse_range(header, 100) is None


def test_range_not_satisfiable_is_a_value_error() -> None:
    assert issubclass(RangeNotSatisfiable, ValueError)
