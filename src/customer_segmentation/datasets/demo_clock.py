"""The demo clock as a dataset: loads the demo's "today" (or none), saves a new one (demo/clock.py)."""

from __future__ import annotations

import logging
from typing import Any

from kedro.io.core import DatasetError

from customer_segmentation.clock import now_utc
from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.demo.clock import DEMO_CLOCK_COLUMNS, DEMO_CLOCK_TABLE, DemoClock, as_datetime
from customer_segmentation.demo.marker import DEMO_SOURCE_PREFIX
from customer_segmentation.warehouse.identifiers import validate_identifier
from customer_segmentation.warehouse.tables import create_table_sql, table_columns, transaction

logger = logging.getLogger(__name__)


class DemoClockDataset(SnowparkTableDataset):
    """Table DEMO_CLOCK (one row) read together with RAW_DATA (``raw_table``).

    ``load()`` returns a :class:`DemoClock`: when RAW_DATA holds demo rows and no other row, its
    ``today`` is the latest of the stored clock (if the table exists) and the latest ``LOADED_AT``
    of the demo rows; otherwise ``DemoClock()`` (no clock: the wall clock applies). Without the
    table, a RAW_DATA of yours costs one ``LIMIT 1`` probe, never a scan.

    ``save(DemoClock)`` replaces the row in one transaction (the table is created first, outside
    it: DDL commits on Snowflake); a ``DemoClock()`` without ``today`` writes nothing.
    """

    def __init__(
        self, *, raw_table: str = "RAW_DATA", table_name: str = DEMO_CLOCK_TABLE, **kwargs: Any
    ) -> None:
        super().__init__(table_name=table_name, **kwargs)
        self._raw_table = validate_identifier(raw_table, "table name (raw_table)")

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "raw_table": self._raw_table}

    def load(self) -> DemoClock:  # type: ignore[override]
        session = self.session
        raw_columns = table_columns(session, self._database, self._schema, self._raw_table)
        if "SOURCE_FILE" not in raw_columns or "LOADED_AT" not in raw_columns:
            return DemoClock()  # no RAW_DATA, or not one the demo wrote
        raw = self._fqn(self._raw_table)
        demo = [DEMO_SOURCE_PREFIX + "%"]
        stored: tuple[Any, Any] = (None, None)
        if table_columns(session, self._database, self._schema, self._table_name):
            stored = tuple(session.sql(f"SELECT MAX(TODAY), MAX(SET_BY) FROM {self.fqn}").collect()[0])
        elif session.sql(
            f"SELECT 1 FROM {raw} WHERE SOURCE_FILE IS NULL OR NOT SOURCE_FILE LIKE ? LIMIT 1", params=demo
        ).collect():
            return DemoClock()  # your data and no clock: the first row answers, nothing is scanned
        # rows that are not the demo's (NULL SOURCE_FILE counts as yours), and the latest demo load
        foreign, latest = session.sql(
            "SELECT COALESCE(SUM(CASE WHEN SOURCE_FILE LIKE ? THEN 0 ELSE 1 END), 0), "
            f"MAX(CASE WHEN SOURCE_FILE LIKE ? THEN LOADED_AT END) FROM {raw}",
            params=demo * 2,
        ).collect()[0]
        if int(foreign or 0) > 0:
            logger.info(
                "%s is ignored: %s holds %s row(s) of your own, so the wall clock applies",
                self.fqn,
                self._raw_table,
                f"{int(foreign):,}",
            )
            return DemoClock()
        today, loaded = as_datetime(stored[0]), as_datetime(latest)
        candidates = [t for t in (today, loaded) if t is not None]
        if not candidates:
            return DemoClock()
        newest = max(candidates)
        # a demo seeded before the clock existed, or a simulate_days stopped between its two writes
        set_by = str(stored[1] or "") if today is not None and newest == today else "the latest demo load"
        return DemoClock(today=newest, set_by=set_by)

    def save(self, data: Any) -> None:
        if not isinstance(data, DemoClock):
            raise DatasetError(f"{self.fqn} saves a DemoClock, not {type(data).__name__}.")
        if data.today is None:
            return
        session = self.session
        if not table_columns(session, self._database, self._schema, self._table_name):
            session.sql(
                create_table_sql(self._database, self._schema, self._table_name, DEMO_CLOCK_COLUMNS)
            ).collect()
        with transaction(session):
            session.sql(f"DELETE FROM {self.fqn}").collect()
            session.sql(
                f"INSERT INTO {self.fqn} (TODAY, SET_BY, RUN_ID, UPDATED_AT) "
                "SELECT CAST(? AS TIMESTAMP_NTZ), ?, ?, CAST(? AS TIMESTAMP_NTZ)",
                params=[
                    data.today.isoformat(sep=" "),
                    data.set_by,
                    data.run_id,
                    now_utc().isoformat(sep=" "),
                ],
            ).collect()
        logger.info("Demo clock set to %s (%s)", f"{data.today:%Y-%m-%d %H:%M:%S}", data.set_by or "-")

    def _exists(self) -> bool:
        return bool(table_columns(self.session, self._database, self._schema, self._table_name))
