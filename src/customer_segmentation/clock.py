"""The project's "now": UTC as a naive timestamp to the second, as the warehouse's TIMESTAMP_NTZ columns hold it."""

from __future__ import annotations

from datetime import UTC, datetime


def now_utc() -> datetime:
    """The current UTC time without time zone or microseconds (the stamps of loads and runs)."""
    return datetime.now(UTC).replace(tzinfo=None, microsecond=0)
