"""quiv_nb.units: duration parsing and formatting, shared by the magics, the dashboard and the bars."""

from __future__ import annotations

import math

import pytest

from quiv_nb.units import format_duration, parse_duration


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("10", 10.0), ("10s", 10.0), ("1.5s", 1.5), (".5", 0.5), ("5m", 300.0), ("2min", 120.0),
     ("1h", 3600.0), ("1d", 86400.0), (" 3 H ", 10800.0), ("7sec", 7.0), ("1m30s", 90.0), ("1h05m", 3900.0)],
)  # fmt: skip
def test_parse_duration_accepts_the_documented_spellings(text, seconds):
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize(
    "text", ["", "0", "0s", "-5", "5x", "m", "1e3", "5 m s", "10 5s", "5s10", "9" * 400, "nan", "inf"]
)
def test_parse_duration_rejects_with_a_message_that_says_what_to_write(text):
    with pytest.raises(ValueError, match=r"bad duration .*e\.g\. 500ms, 10, 10s, 5m, 1h, 1d"):
        parse_duration(text)


def test_format_duration_is_compact():
    cases = [0, -1, math.nan, 0.0001, 0.5, 1, 1.5, 5, 9.97, 59.9, 90, 3600, 3900, 2 * 86400, 2 * 86400 + 4 * 3600]
    assert [format_duration(s) for s in cases] == [
        "0s", "0s", "0s", "<1ms", "500ms", "1s", "1.5s", "5s", "10s", "59s", "1m30s", "1h", "1h05m", "2d", "2d04h",
    ]  # fmt: skip
    assert format_duration(math.inf) == "∞"


@pytest.mark.parametrize("text", ["500ms", "10s", "5m", "1h", "1d", "90"])
def test_format_reads_back_through_parse(text):
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)
