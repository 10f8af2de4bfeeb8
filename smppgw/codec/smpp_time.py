"""SMPP time fields (SMPP v3.4 section 7.1.1) to and from datetime / timedelta.

Absolute: ``YYMMDDhhmmsstnnp`` with ``t`` tenths of a second, ``nn`` the offset from UTC in
quarter hours (00-48) and ``p`` ``+`` or ``-``. Relative: ``YYMMDDhhmmss000R``, an interval from
now. A relative year is taken as 365 days and a month as 30 days: the spec leaves calendar
arithmetic to the SMSC, and these are the values SMSCs commonly use. ``YY`` is 2000-2099.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from .errors import SmppError

__all__ = ["SmppTimeError", "format_absolute", "format_relative", "parse_smpp_time"]

_YEAR = timedelta(days=365)
_MONTH = timedelta(days=30)


class SmppTimeError(SmppError, ValueError):
    """A malformed SMPP time field, or a value that cannot be written as one."""


def parse_smpp_time(value: str) -> datetime | timedelta | None:
    """Parse an SMPP time field.

    Returns:
        None for the empty string; an aware datetime for an absolute time; a timedelta for a
        relative one.

    Raises:
        SmppTimeError: wrong length, non-digits, an impossible date, or an offset over 48.
    """
    if value == "":
        return None
    # str.isdigit() also takes non-ASCII digits (Arabic-Indic ones...), which int() reads and
    # no SMSC would.
    if (
        len(value) != 16
        or not value.isascii()
        or not value[:15].isdigit()
        or value[15] not in "+-R"
    ):
        raise SmppTimeError(f"SMPP time {value!r}: expected 15 digits and '+', '-' or 'R'")
    yy, mo, dd, hh, mi, ss = (int(value[i : i + 2]) for i in range(0, 12, 2))
    tenths, quarters, sign = int(value[12]), int(value[13:15]), value[15]
    if sign == "R":
        if hh > 23 or mi > 59 or ss > 59:
            raise SmppTimeError(f"SMPP relative time {value!r}: hh:mm:ss out of range")
        return yy * _YEAR + mo * _MONTH + timedelta(days=dd, hours=hh, minutes=mi, seconds=ss)
    if quarters > 48:
        raise SmppTimeError(f"SMPP time {value!r}: offset of {quarters} quarter hours exceeds 48")
    offset = timedelta(minutes=15 * quarters) * (1 if sign == "+" else -1)
    try:
        return datetime(2000 + yy, mo, dd, hh, mi, ss, tenths * 100_000, tzinfo=timezone(offset))
    except ValueError as exc:
        raise SmppTimeError(f"SMPP time {value!r}: {exc}") from exc


def format_absolute(dt: datetime) -> str:
    """Write an aware datetime as ``YYMMDDhhmmsstnnp`` in its own UTC offset.

    Raises:
        SmppTimeError: a naive datetime, a year outside 2000-2099, or an offset that is not
            a whole number of quarter hours.
    """
    offset = dt.utcoffset()
    if offset is None:
        raise SmppTimeError("SMPP absolute time needs an aware datetime (with a UTC offset)")
    if not 2000 <= dt.year <= 2099:
        raise SmppTimeError(f"SMPP absolute time: year {dt.year} outside 2000-2099")
    quarters, rest = divmod(abs(offset), timedelta(minutes=15))
    if rest or quarters > 48:
        raise SmppTimeError(f"SMPP absolute time: UTC offset {offset} is not whole quarter hours")
    sign = "-" if offset < timedelta(0) else "+"
    return f"{dt:%y%m%d%H%M%S}{dt.microsecond // 100_000}{quarters:02d}{sign}"


def format_relative(td: timedelta) -> str:
    """Write a non-negative interval as ``YYMMDDhhmmss000R`` (years of 365, months of 30 days).

    Raises:
        SmppTimeError: a negative interval or one of 100 years or more.
    """
    if td < timedelta(0):
        raise SmppTimeError(f"SMPP relative time: negative interval {td}")
    seconds = int(td.total_seconds())
    years, seconds = divmod(seconds, 365 * 86400)
    months, seconds = divmod(seconds, 30 * 86400)
    days, seconds = divmod(seconds, 86400)
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    if years > 99:
        raise SmppTimeError(f"SMPP relative time: {td} is 100 years or more")
    return f"{years:02d}{months:02d}{days:02d}{hours:02d}{minutes:02d}{seconds:02d}000R"
