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

    ``load()`` returns a :class:`DemoClock`: its ``today`` is the latest of the stored clock and
    the latest ``LOADED_AT`` of the demo rows, when the table exists and RAW_DATA holds demo rows
    only; otherwise ``DemoClock()`` (no clock: the wall clock applies).

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
        if not table_columns(session, self._database, self._schema, self._table_name):
            return DemoClock()
        raw_columns = table_columns(session, self._database, self._schema, self._raw_table)
        if "SOURCE_FILE" not in raw_columns or "LOADED_AT" not in raw_columns:
            return DemoClock()  # not a RAW_DATA the demo wrote
        stored = session.sql(f"SELECT MAX(TODAY), MAX(SET_BY) FROM {self.fqn}").collect()[0]
        # one scan: rows that are not the demo's (NULL SOURCE_FILE counts as yours), latest demo load
        foreign, latest = session.sql(
            "SELECT COALESCE(SUM(CASE WHEN SOURCE_FILE LIKE ? THEN 0 ELSE 1 END), 0), "
            "MAX(CASE WHEN SOURCE_FILE LIKE ? THEN LOADED_AT END) "
            f"FROM {self._fqn(self._raw_table)}",
            params=[DEMO_SOURCE_PREFIX + "%", DEMO_SOURCE_PREFIX + "%"],
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
        if today is None and loaded is None:
            return DemoClock()
        candidates = [t for t in (today, loaded) if t is not None]
        newest = max(candidates)
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
