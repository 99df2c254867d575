"""The clock, in one place: how the project reads the time, keeps it (naive UTC in the store) and writes it."""

from __future__ import annotations

import datetime as dt

UTC = dt.timezone.utc
ISO_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"


def utc_now() -> dt.datetime:
    """Now, in UTC, to the second (what bundles carry)."""
    return dt.datetime.now(UTC).replace(microsecond=0)


def utc_naive(value: dt.datetime) -> dt.datetime:
    """A datetime as naive UTC (how the store keeps time); naive input is taken to be UTC already."""
    if value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


def store_now(now: dt.datetime | None = None) -> dt.datetime:
    """`now` (or the current time) as naive UTC to the microsecond, which is what DuckDB's TIMESTAMP keeps."""
    return utc_naive(now if now is not None else dt.datetime.now(UTC))


def iso(value: dt.datetime | None) -> str | None:
    """Naive-UTC datetime -> 'YYYY-MM-DDTHH:MM:SS.ffffffZ'."""
    if value is None:
        return None
    return utc_naive(value).strftime(ISO_FORMAT)


def parse_iso(text: object) -> dt.datetime:
    """The inverse of `iso`: 'YYYY-MM-DDTHH:MM:SS.ffffffZ' -> naive UTC; ValueError when it is not such a time."""
    return dt.datetime.strptime(str(text), ISO_FORMAT)


def parse_day(text: str, option: str | None = None) -> dt.date:
    """A day written YYYY-MM-DD; a well-formed day that does not exist (2026-02-30) is told apart from bad text."""
    import calendar
    import re

    from ..errors import UsageError

    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})", text.strip())
    if m is None:
        raise UsageError(f"{text!r} is not a day written YYYY-MM-DD, e.g. 2025-12-31", option)
    year, month, day = (int(g) for g in m.groups())
    if not 1 <= month <= 12:
        raise UsageError(f"{text} does not exist: there is no month {month:02d} (months are 01-12)", option)
    days = calendar.monthrange(year, month)[1]
    if not 1 <= day <= days:
        raise UsageError(
            f"{text} does not exist: {calendar.month_name[month]} {year} has {days} days", option
        )
    return dt.date(year, month, day)
