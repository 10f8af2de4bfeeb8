"""SMPP time fields (SMPP v3.4 section 7.1.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from smppgw.codec.smpp_time import (
    SmppTimeError,
    format_absolute,
    format_relative,
    parse_smpp_time,
)


def test_golden_values() -> None:
    assert parse_smpp_time("") is None
    assert parse_smpp_time("000000010000000R") == timedelta(hours=1)
    assert parse_smpp_time("000001000000000R") == timedelta(days=1)
    assert parse_smpp_time("010203040506000R") == timedelta(
        days=365 + 2 * 30 + 3, hours=4, minutes=5, seconds=6
    )
    assert parse_smpp_time("231124153000004+") == datetime(
        2023, 11, 24, 15, 30, tzinfo=timezone(timedelta(hours=1))
    )
    assert parse_smpp_time("261124153012722-") == datetime(
        2026, 11, 24, 15, 30, 12, 700_000, tzinfo=timezone(-timedelta(hours=5, minutes=30))
    )


@pytest.mark.parametrize(
    "value",
    [
        "1",
        "23112415300000+",
        "2311241530000049+",
        "231124153000049+",
        "231324153000000+",
        "23112415300000x+",
        "231124153000000*",
        "000000250000000R",
    ],
)
def test_malformed_values(value: str) -> None:
    with pytest.raises(SmppTimeError):
        parse_smpp_time(value)


def test_an_offset_over_48_quarter_hours_is_refused_by_name() -> None:
    with pytest.raises(SmppTimeError, match="offset of 49 quarter hours exceeds 48"):
        parse_smpp_time("231124153000049+")
    assert parse_smpp_time("231124153000048-") == datetime(
        2023, 11, 24, 15, 30, tzinfo=timezone(-timedelta(hours=12))
    )


@pytest.mark.parametrize("year", [1999, 2100])
def test_an_absolute_time_outside_2000_to_2099_cannot_be_written(year: int) -> None:
    with pytest.raises(SmppTimeError, match=f"year {year} outside 2000-2099"):
        format_absolute(datetime(year, 6, 1, tzinfo=UTC))


def test_a_relative_time_of_100_years_cannot_be_written() -> None:
    assert format_relative(timedelta(days=99 * 365 + 364)) == "991204000000000R"
    with pytest.raises(SmppTimeError, match="100 years or more"):
        format_relative(timedelta(days=100 * 365))


def test_format_errors() -> None:
    with pytest.raises(SmppTimeError):
        format_absolute(datetime(2026, 1, 1))
    with pytest.raises(SmppTimeError):
        format_absolute(datetime(2026, 1, 1, tzinfo=timezone(timedelta(minutes=10))))
    with pytest.raises(SmppTimeError):
        format_relative(timedelta(seconds=-1))


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
    st.integers(-48, 48),
)
def test_absolute_round_trip(naive: datetime, quarters: int) -> None:
    dt = naive.replace(
        microsecond=naive.microsecond // 100_000 * 100_000,
        tzinfo=timezone(timedelta(minutes=15 * quarters)),
    )
    text = format_absolute(dt)
    assert len(text) == 16
    parsed = parse_smpp_time(text)
    assert parsed == dt
    assert isinstance(parsed, datetime)
    assert parsed.utcoffset() == dt.utcoffset()


@given(st.integers(0, 99 * 365 * 86400))
def test_relative_round_trip(seconds: int) -> None:
    td = timedelta(seconds=seconds)
    assert parse_smpp_time(format_relative(td)) == td
