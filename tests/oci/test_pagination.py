"""``n``/``last`` of tag and catalog listings, and the ``Link`` header to the next page."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from dockyard.oci import errors
from dockyard.oci.pagination import Page, link_header, parse_page
from tests.oci import deterministic

_LINK = re.compile(r'<(?P<url>[^>]*)>; rel="next"')


def pagination_error(n: str, max_entries: int | None = None) -> errors.RegistryError:
    with pytest.raises(errors.RegistryError) as caught:
        parse_page(n, None, max_entries)
    return caught.value


@pytest.mark.parametrize(
    ("n", "last", "max_entries", "expected"),
    [
        (None, None, None, Page(None, None)),
        ("", None, None, Page(None, None)),
        ("0", None, None, Page(0, None)),
        ("10", "b", None, Page(10, "b")),
        ("007", None, None, Page(7, None)),
        ("10", "", None, Page(10, None)),  # an empty last means "from the start"
        (None, None, 100, Page(100, None)),  # catalog.maxentries caps an absent n
        ("1000", None, 100, Page(100, None)),
        ("5", None, 100, Page(5, None)),
        ("999999999999", None, None, Page(999_999_999_999, None)),
    ],
)
def test_page_examples(
    n: str | None, last: str | None, max_entries: int | None, expected: Page
) -> None:
    assert parse_page(n, last, max_entries) == expected


@pytest.mark.parametrize(
    "n", ["-1", "abc", "1.5", "1e3", " 1", "1 ", "+1", "0x10", "1_000", "9" * 13, "\n"]
)
def test_invalid_n_is_refused(n: str) -> None:
    error = pagination_error(n)
    assert error.error is errors.PAGINATION_NUMBER_INVALID
    assert error.status == 400
    assert len(error.json_bytes()) < 512


@deterministic
@given(
    st.text(alphabet=st.characters(max_codepoint=127), max_size=15),
    st.none() | st.integers(0, 1000),
)
def test_any_ascii_n_gives_a_page_or_pagination_number_invalid(
    n: str, max_entries: int | None
) -> None:
    try:
        page = parse_page(n, None, max_entries)
    except errors.RegistryError as exc:
        assert exc.error is errors.PAGINATION_NUMBER_INVALID
        assert n != ""
        return
    if n == "":
        assert page.limit == max_entries
        return
    assert n.isascii() and n.isdigit()
    expected = int(n) if max_entries is None else min(int(n), max_entries)
    assert page.limit == expected


@pytest.mark.parametrize("n", ["²", "①", "١٢"])
def test_unicode_digits_are_not_a_number(n: str) -> None:
    assert pagination_error(n).error is errors.PAGINATION_NUMBER_INVALID


def test_link_header_format() -> None:
    assert (
        link_header("/v2/library/ubuntu/tags/list", 2, "b")
        == '</v2/library/ubuntu/tags/list?n=2&last=b>; rel="next"'
    )


@deterministic
@given(
    st.integers(min_value=0, max_value=10**6),
    st.text(min_size=1, max_size=60),
    st.dictionaries(st.sampled_from(["artifactType", "q", "x"]), st.text(max_size=20), max_size=2),
)
def test_link_header_round_trips_its_query(limit: int, last: str, extra: dict[str, str]) -> None:
    header = link_header("/v2/_catalog", limit, last, extra)
    match = _LINK.fullmatch(header)
    assert match is not None, header
    url = urlsplit(match["url"])
    assert url.path == "/v2/_catalog"
    query = parse_qs(url.query, keep_blank_values=True, strict_parsing=True)
    assert query["n"] == [str(limit)]
    assert query["last"] == [last]
    for key, value in extra.items():
        assert query[key] == [value]
    # Nothing a client sent in `last` can break out of the <...> or add a header.
    assert ">" not in match["url"] and "\r" not in header and "\n" not in header
