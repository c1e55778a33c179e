"""The project's "now": UTC as a naive timestamp to the second, as the warehouse's TIMESTAMP_NTZ columns hold it."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any


def now_utc() -> datetime:
    """The current UTC time without time zone or microseconds (the stamps of loads and runs)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)


def as_date(value: Any) -> date:
    """A warehouse DATE/TIMESTAMP value (or its ISO text) as a date."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
