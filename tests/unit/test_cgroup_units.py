"""Unit tests for nsbox.cgroup's unit parsers (sizes, CPU lists, weight conversions)."""

from __future__ import annotations

import pytest

from nsbox.cgroup import format_size, parse_size
from nsbox.cgroup._units import (
    format_cpu_list,
    parse_cpu_list,
    weight_to_blkio_weight,
    weight_to_shares,
)
from nsbox.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512K", 512 * 1024),
        ("256M", 256 * 2**20),
        ("1.5G", 3 * 2**29),
        ("1G", 2**30),
        ("2T", 2 * 2**40),
        ("256MB", 256 * 2**20),
        ("256MiB", 256 * 2**20),
        ("64m", 64 * 2**20),
        (" 10k ", 10240),
        ("4096", 4096),
        ("4096B", 4096),
        ("0.5K", 512),
        (".5M", 2**19),
        (0, 0),
        (123456789, 123456789),
    ],
)
def test_parse_size_accepts_human_units(text: object, expected: int) -> None:
    """Sizes in bytes, with K/M/G/T units as powers of 1024, parse to exact byte counts."""
    assert parse_size(text) == expected


@pytest.mark.parametrize("value", [None, "max", "MAX", " max "])
def test_parse_size_unlimited(value: object) -> None:
    """None and 'max' mean unlimited and parse to None."""
    assert parse_size(value) is None


@pytest.mark.parametrize(
    "value",
    ["12ZB", "12Y", "-1", -1, "-1M", True, False, 1.5, "1.5", "abc", "", "M", "1 2M",
     "10KiK", "1e3", [1], b"1M", "8E", 2**63, "1024iB"],
)
def test_parse_size_rejects_nonsense_with_help(value: object) -> None:
    """Bad sizes raise ConfigError whose message says what is accepted."""
    with pytest.raises(ConfigError) as info:
        parse_size(value, what="memory_max")
    message = str(info.value)
    assert message.startswith("memory_max:")
    assert "512K" in message or "2**63-1" in message


def test_parse_size_rejects_unlimited_when_not_allowed() -> None:
    """A caller can refuse unlimited values."""
    with pytest.raises(ConfigError):
        parse_size(None, unlimited=False)


@pytest.mark.parametrize("size", [None, 1, 1023, 1024, 1536 * 1024, 256 * 2**20, 3 * 2**29,
                                  2**60, 2**63 - 1])
def test_format_size_round_trips(size: int | None) -> None:
    """format_size produces text that parse_size reads back to the same number."""
    assert parse_size(format_size(size)) == size


def test_format_size_picks_the_largest_exact_unit() -> None:
    """format_size uses the largest unit that divides the value exactly."""
    assert format_size(256 * 2**20) == "256M"
    assert format_size(1536 * 2**20) == "1536M"
    assert format_size(1000) == "1000"


@pytest.mark.parametrize(
    ("text", "numbers"),
    [("0", {0}), ("0-3", {0, 1, 2, 3}), ("0-1,3", {0, 1, 3}), ("5,1", {1, 5}), (" 2 ", {2})],
)
def test_parse_cpu_list(text: str, numbers: set[int]) -> None:
    """The kernel list format parses to the set of numbers it names."""
    assert parse_cpu_list(text) == frozenset(numbers)


@pytest.mark.parametrize("text", ["", "a", "0-", "-1", "1-0", "0,,1", "0;1", "0 1", "0-1-2"])
def test_parse_cpu_list_rejects_bad_syntax(text: str) -> None:
    """Malformed lists raise ConfigError explaining the syntax."""
    with pytest.raises(ConfigError, match="0-1,3"):
        parse_cpu_list(text)


def test_format_cpu_list_uses_ranges() -> None:
    """Consecutive numbers collapse into ranges."""
    assert format_cpu_list({0, 1, 2, 5, 7, 8}) == "0-2,5,7-8"
    assert format_cpu_list(set()) == ""


def test_weight_to_shares_matches_runc_inverse() -> None:
    """The v2-weight to v1-shares conversion inverts runc's shares-to-weight formula."""
    assert weight_to_shares(1) == 2
    assert weight_to_shares(10000) == 262144
    for shares in (2, 1024, 4096, 262144):
        weight = 1 + ((shares - 2) * 9999) // 262142  # runc ConvertCPUSharesToCgroupV2Value
        assert abs(weight_to_shares(weight) - shares) <= 27  # one weight step is ~26 shares


def test_weight_to_blkio_weight_spans_v1_range() -> None:
    """io weights map 1..10000 onto blkio's 10..1000."""
    assert weight_to_blkio_weight(1) == 10
    assert weight_to_blkio_weight(10000) == 1000
