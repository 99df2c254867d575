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
