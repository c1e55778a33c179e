"""The demo clock: the demo world's own "today", kept in the warehouse (table DEMO_CLOCK).

The demo's events end on ``demo_data.end_date`` and ``simulate_days`` adds days after it, so the
demo lives on a calendar of its own that runs ahead of (or behind) the wall clock. Its "today" is
the morning its latest batch was loaded: ``demo_data.loaded_at`` after the seed, and the morning
after the last simulated day after ``simulate_days``. While the warehouse holds only demo data,
every pipeline uses it as "now": ingestion's ``as_of`` (future timestamps are judged against it),
the features' reference date (so recency counts days before the demo's today) and, through the
features, the monitoring snapshot. An explicit ``ingestion.as_of`` or ``rfm_features.reference_date``
still wins.

Rules (docs/demo-data.md, "The demo clock"):

- one row, replaced in one transaction (DELETE + INSERT, ``warehouse/tables.py`` ``transaction``)
  after the events it dates were appended; the reader also takes the latest demo ``LOADED_AT``
  into account (the clock is never behind the demo's own loads), so a ``simulate_days`` stopped
  between its two writes, or a demo seeded by a version without the clock, still reads right;
- it applies only while RAW_DATA holds demo rows and no other row (``SOURCE_FILE`` starting with
  ``demo://``); the first user load drops the table with the demo (``demo_data.derived_tables``),
  and a RAW_DATA with any row of yours ignores a leftover clock. User data never uses it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

#: The table that holds the demo clock (one row).
DEMO_CLOCK_TABLE = "DEMO_CLOCK"
DEMO_CLOCK_COLUMNS: dict[str, str] = {
    "TODAY": "TIMESTAMP_NTZ",  # the demo world's "now"
    "SET_BY": "VARCHAR",  # what moved it: the demo seed, simulate_days
    "RUN_ID": "VARCHAR",
    "UPDATED_AT": "TIMESTAMP_NTZ",  # wall-clock time of the write (UTC)
}


@dataclass(frozen=True)
class DemoClock:
    """The demo's "today" (None: no demo clock applies, so the wall clock does), and what set it."""

    today: datetime | None = None
    set_by: str = ""
    run_id: str = ""

    @property
    def reference_date(self) -> date | None:
        """The demo's today as a date: the features' reference date (recency counts days before it)."""
        return self.today.date() if self.today is not None else None

    def describe(self) -> str:
        return f"demo clock {self.today:%Y-%m-%d %H:%M:%S}" if self.today is not None else "no demo clock"


def as_datetime(value: object) -> datetime | None:
    """A TIMESTAMP_NTZ value as returned by Snowflake or the embedded warehouse (datetime or text)."""
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, date):
        return datetime.combine(value, datetime.min.time())
    return datetime.fromisoformat(str(value))
