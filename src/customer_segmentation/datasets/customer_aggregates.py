"""CUSTOMER_AGGREGATES, CUSTOMER_DAILY_SPEND and their watermark row: the state of incremental features.

Three warehouse tables written together (docs/features.md):
- ``table_name`` (CUSTOMER_AGGREGATES): one row per customer, reference-date-free aggregates;
- ``daily_table`` (CUSTOMER_DAILY_SPEND): net spend per customer and order day;
- ``state_table`` (CUSTOMER_AGGREGATES_STATE): one row saying which TRANSFORMED_DATA rows the two
  tables hold (the LOADED_AT watermark and a fingerprint of the rows at or below it).

A save takes an :class:`AggregatesUpdate`:
- ``rebuild``: the state row is deleted first, both tables are replaced (``CREATE OR REPLACE``,
  transient, grants kept), and the state row is written last. A crash in between leaves no state
  row, so the next run rebuilds: the tables are never trusted without their state;
- ``incremental``: the recomputed rows are first written to temporary tables (DDL, outside the
  transaction), then one transaction deletes the touched customers' rows from both tables,
  inserts the new ones and replaces the state row: all of it or none of it is applied, so a
  crash never leaves customers counted twice or a watermark ahead of the rows;
- ``unchanged``: nothing is written.
Loading gives a :class:`CustomerAggregates` (the two tables as Snowpark DataFrames and the state).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from kedro.io.core import DatasetError
from snowflake.snowpark import functions as F

from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.warehouse.identifiers import validate_identifier
from customer_segmentation.warehouse.tables import (
    create_table_sql,
    drop_tables_outside_transaction,
    forget_table_columns,
    remember_table_columns,
    table_columns,
    transaction,
)

logger = logging.getLogger(__name__)

UpdateMode = Literal["rebuild", "incremental", "unchanged"]

#: The watermark row's columns (fixed DDL).
STATE_COLUMNS: dict[str, str] = {
    "WATERMARK": "TIMESTAMP_NTZ",
    "EVENTS": "NUMBER(38,0)",
    "MIN_RUN_ID": "VARCHAR",
    "MAX_RUN_ID": "VARCHAR",
    "MAX_EVENT_TS": "TIMESTAMP_NTZ",
    "CHANNELS": "VARCHAR",
    "MODE": "VARCHAR",
    "CUSTOMERS_UPDATED": "NUMBER(38,0)",
    "UPDATED_AT": "TIMESTAMP_NTZ",
}
_TS_FORMAT = "%Y-%m-%d %H:%M:%S.%f"


@dataclass(frozen=True)
class AggregatesState:
    """Which TRANSFORMED_DATA rows the aggregates hold.

    ``watermark``: the largest LOADED_AT aggregated (None when no row has one); ``events``: the
    number of rows aggregated, i.e. every row with LOADED_AT at or below the watermark or NULL;
    ``min_run_id``/``max_run_id``: the smallest and largest INGESTION_RUN_ID among them (a full
    refresh of TRANSFORMED_DATA restamps every row, so they change); ``max_event_ts``: the latest
    EVENT_TS among them (the default reference date is the day after); ``channels``: the channel
    list the per-channel columns were built for.
    """

    watermark: datetime | None
    events: int
    min_run_id: str | None
    max_run_id: str | None
    max_event_ts: datetime | None
    channels: str
    mode: str = "rebuild"
    customers_updated: int = 0
    updated_at: datetime | None = None


@dataclass(frozen=True)
class CustomerAggregates:
    """What the dataset loads: both tables (None when missing) and the state (None when missing)."""

    customers: Any
    daily_spend: Any
    state: AggregatesState | None


@dataclass(frozen=True)
class AggregatesUpdate:
    """What a node hands to the dataset: the rows to write and the state that describes them.

    ``daily_spend``: the CUSTOMER_DAILY_SPEND rows; ``customers``: a function that turns the daily
    rows, once written, into the CUSTOMER_AGGREGATES rows (so the orders are aggregated once, not
    once per table); ``touched`` (incremental only): a one-column frame of the CUSTOMER_IDs whose
    rows are replaced.
    """

    mode: UpdateMode
    state: AggregatesState
    customers: Callable[[Any], Any] | None = None
    daily_spend: Any = None
    touched: Any = None


def _ts(value: datetime | None) -> str | None:
    return None if value is None else value.strftime(_TS_FORMAT)


class CustomerAggregatesDataset(SnowparkTableDataset):
    """The per-customer aggregates of incremental features (see the module docstring)."""

    def __init__(self, *, daily_table: str, state_table: str, **kwargs: Any) -> None:
        save_args = {"mode": "overwrite", "table_type": "transient", "copy_grants": True}
        save_args.update(kwargs.pop("save_args", None) or {})
        super().__init__(save_args=save_args, **kwargs)
        self._daily_table = validate_identifier(daily_table, "table name (daily_table)")
        self._state_table = validate_identifier(state_table, "table name (state_table)")

    def _describe(self) -> dict[str, Any]:
        return {"table": self.fqn, "daily_table": self._daily_table, "state_table": self._state_table}

    def _has(self, table: str) -> bool:
        return bool(table_columns(self.session, self._database, self._schema, table))

    def load(self) -> CustomerAggregates:
        session = self.session
        have_customers, have_daily = self._has(self._table_name), self._has(self._daily_table)
        state = self._read_state() if have_customers and have_daily else None
        return CustomerAggregates(
            customers=session.table(self.fqn) if have_customers else None,
            daily_spend=session.table(self._fqn(self._daily_table)) if have_daily else None,
            state=state,
        )

    def _read_state(self) -> AggregatesState | None:
        if not self._has(self._state_table):
            return None
        cols = ", ".join(STATE_COLUMNS)
        rows = self.session.sql(f"SELECT {cols} FROM {self._fqn(self._state_table)}").collect()
        if len(rows) != 1:  # none (a rebuild stopped half-way) or several (not written by this code)
            return None
        r = rows[0]
        return AggregatesState(
            watermark=r[0],
            events=int(r[1] or 0),
            min_run_id=r[2],
            max_run_id=r[3],
            max_event_ts=r[4],
            channels=str(r[5] or ""),
            mode=str(r[6] or ""),
            customers_updated=int(r[7] or 0),
            updated_at=r[8],
        )

    def save(self, data: AggregatesUpdate) -> None:
        if not isinstance(data, AggregatesUpdate):
            raise DatasetError(f"{type(self).__name__} saves an AggregatesUpdate, not {type(data).__name__}.")
        if data.mode == "unchanged":
            logger.info(
                "%s: no new events since watermark %s; nothing written", self.fqn, data.state.watermark
            )
            return
        if data.mode == "rebuild":
            self._rebuild(data)
        elif data.mode == "incremental":
            self._update(data)
        else:
            raise DatasetError(f"Unknown aggregates update mode {data.mode!r}.")

    def _state_sql(self) -> str:
        """INSERT of the one state row, values bound (text cast to each column's type)."""
        casts = [f"CAST(? AS {sql_type})" for sql_type in STATE_COLUMNS.values()]
        return f"INSERT INTO {self._fqn(self._state_table)} ({', '.join(STATE_COLUMNS)}) SELECT {', '.join(casts)}"

    def _state_params(self, state: AggregatesState) -> list[Any]:
        return [
            _ts(state.watermark),
            int(state.events),
            state.min_run_id,
            state.max_run_id,
            _ts(state.max_event_ts),
            state.channels,
            state.mode,
            int(state.customers_updated),
            _ts(state.updated_at),
        ]

    def _ensure_state_table(self) -> None:
        session = self.session
        if not self._has(self._state_table):
            session.sql(
                create_table_sql(self._database, self._schema, self._state_table, STATE_COLUMNS)
            ).collect()
            remember_table_columns(
                session, self._database, self._schema, self._state_table, list(STATE_COLUMNS)
            )

    def _rebuild(self, data: AggregatesUpdate) -> None:
        session = self.session
        state_fqn = self._fqn(self._state_table)
        # 1. no state row while the tables are being replaced: a crash before step 3 means "rebuild"
        if self._has(self._state_table):
            session.sql(f"DELETE FROM {state_fqn}").collect()
        # 2. each CREATE OR REPLACE is atomic on its own (transient: rebuildable from TRANSFORMED_DATA);
        # the daily rows first: the customer rows are rolled up from the stored daily rows
        self._replace(data.daily_spend, self._daily_table)
        self._replace(data.customers(session.table(self._fqn(self._daily_table))), self._table_name)
        # 3. the state row, last
        self._ensure_state_table()
        sql = self._state_sql()
        session.sql(sql, params=self._state_params(data.state)).collect()
        logger.info(
            "%s rebuilt from %s events (watermark %s)",
            self.fqn,
            f"{data.state.events:,}",
            data.state.watermark,
        )

    def _replace(self, frame: Any, table: str) -> None:
        session = self.session
        try:
            self._write(frame, self._fqn(table), "overwrite", self._table_type, self._copy_grants)
        except BaseException:
            forget_table_columns(session, self._database, self._schema, table)
            raise
        remember_table_columns(session, self._database, self._schema, table, frame.columns)

    def _update(self, data: AggregatesUpdate) -> None:
        session = self.session
        if not (self._has(self._table_name) and self._has(self._daily_table)):
            raise DatasetError(
                f"{self.fqn} or {self._daily_table} is missing: an incremental update needs both; "
                "run `kedro run --pipelines rfm_features` to rebuild them."
            )
        suffix = uuid.uuid4().hex[:10].upper()
        stages = {
            name: validate_identifier(f"{self._table_name}_{name}_{suffix}", "table name")
            for name in ("TOUCHED", "CUSTOMERS", "DAILY")
        }
        try:
            # temporary tables (DDL) before the transaction: a DDL statement would commit it
            # the touched ids under their own column name: DELETE ... USING needs no qualified names
            touched_ids = data.touched.select(F.col("CUSTOMER_ID").alias("TOUCHED_CUSTOMER_ID"))
            self._write(touched_ids, stages["TOUCHED"], "overwrite", "temporary", False)
            self._write(data.daily_spend, stages["DAILY"], "overwrite", "temporary", False)
            customers = data.customers(session.table(stages["DAILY"]))
            self._write(customers, stages["CUSTOMERS"], "overwrite", "temporary", False)
            touched = stages["TOUCHED"]
            count = int(session.sql(f"SELECT COUNT(*) FROM {touched}").collect()[0][0])
            state = replace(data.state, customers_updated=count)
            agg_cols = ", ".join(validate_identifier(c.strip('"'), "column name") for c in customers.columns)
            daily_cols = ", ".join(
                validate_identifier(c.strip('"'), "column name") for c in data.daily_spend.columns
            )
            sql = self._state_sql()
            # Snowflake: DML in an explicit transaction commits or rolls back as one
            # (https://docs.snowflake.com/en/sql-reference/transactions). The rows to delete are
            # named by a table in DELETE's USING clause, the form Snowflake documents for deleting
            # by another table (https://docs.snowflake.com/sql-reference/sql/delete).
            with transaction(session):
                for table in (self.fqn, self._fqn(self._daily_table)):
                    session.sql(
                        f"DELETE FROM {table} USING {touched} WHERE CUSTOMER_ID = TOUCHED_CUSTOMER_ID"
                    ).collect()
                session.sql(
                    f"INSERT INTO {self.fqn} ({agg_cols}) SELECT {agg_cols} FROM {stages['CUSTOMERS']}"
                ).collect()
                session.sql(
                    f"INSERT INTO {self._fqn(self._daily_table)} ({daily_cols}) "
                    f"SELECT {daily_cols} FROM {stages['DAILY']}"
                ).collect()
                session.sql(f"DELETE FROM {self._fqn(self._state_table)}").collect()
                session.sql(sql, params=self._state_params(state)).collect()
        finally:
            # the temporary tables would vanish with the session anyway; dropped here only when no
            # transaction can be open (a DROP would commit it on Snowflake)
            drop_tables_outside_transaction(session, list(stages.values()))
        logger.info(
            "%s: %s customers with new events recomputed (watermark %s)",
            self.fqn,
            f"{state.customers_updated:,}",
            state.watermark,
        )
