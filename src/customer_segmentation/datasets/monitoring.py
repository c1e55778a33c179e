"""Warehouse tables that keep history: snapshot replacement in one transaction, pandas appends.

``WarehouseTableDataset`` extends the project's ``SnowparkTableDataset`` with:
- ``save_args.mode: replace_snapshot`` (with ``snapshot_column``): the rows of the snapshots
  present in the data replace those already stored (delete-then-insert in one transaction), so
  rerunning a day never duplicates it; a node may pass ``SnapshotWrite(data, keep_after=...)``
  to also drop snapshots older than a retention cut-off in the same transaction;
- pandas frames as well as Snowpark DataFrames, written with ``write_pandas`` (bulk COPY), the
  path that works on both Snowflake and the embedded warehouse.
Writes go first to a scratch table (a plain DDL step, outside the transaction), then the target
changes in one transaction, so a crash leaves either the old or the new rows, never half of them.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import date
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError

from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier
from customer_segmentation.warehouse.tables import append_pandas, sql_type_of, table_columns

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SnapshotWrite:
    """Rows of one or more snapshots, plus the oldest snapshot date to keep (retention)."""

    data: Any
    keep_after: date | None = None


class WarehouseTableDataset(SnowparkTableDataset):
    """A warehouse table written from pandas or Snowpark, with snapshot replacement.

    Modes: ``overwrite`` (the table becomes the data), ``append``, ``replace_snapshot``
    (``snapshot_column`` required). Loading is ``SnowparkTableDataset``'s (``if_missing`` ...).
    """

    def __init__(self, **kwargs: Any) -> None:
        save_args = dict(kwargs.pop("save_args", None) or {})
        self._wt_mode = save_args.pop("mode", "overwrite")
        snapshot_column = save_args.pop("snapshot_column", None)
        if self._wt_mode not in ("overwrite", "append", "replace_snapshot"):
            raise DatasetError(
                f"save_args.mode must be overwrite, append or replace_snapshot, not {self._wt_mode!r}"
            )
        if self._wt_mode == "replace_snapshot" and not snapshot_column:
            raise DatasetError("save_args.mode 'replace_snapshot' needs save_args.snapshot_column")
        self._snapshot_column = (
            validate_identifier(snapshot_column, "column name") if snapshot_column else None
        )
        super().__init__(save_args={"mode": "overwrite"}, **kwargs)

    def _describe(self) -> dict[str, Any]:
        return {"table": self.fqn, "save_mode": self._wt_mode, "snapshot_column": self._snapshot_column}

    def save(self, data: Any) -> None:
        keep_after = None
        if isinstance(data, SnapshotWrite):
            data, keep_after = data.data, data.keep_after
        session = self.session
        stage_name = f"{self._table_name}__STAGE_{uuid.uuid4().hex[:8].upper()}"
        stage = qualified_name(self._database, self._schema, stage_name)
        columns = self._stage(session, data, stage_name, stage)
        try:
            self._apply(session, stage, columns, keep_after)
        finally:
            session.sql(f"DROP TABLE IF EXISTS {stage}").collect()

    def _stage(self, session: Any, data: Any, stage_name: str, stage: str) -> list[str]:
        """Write the data to a scratch table; returns its column names."""
        if isinstance(data, pd.DataFrame):
            frame = data.reset_index(drop=True)
            frame.columns = [validate_identifier(str(c), "column name") for c in frame.columns]
            ddl = ", ".join(f"{c} {sql_type_of(frame[c])}" for c in frame.columns)
            session.sql(f"CREATE OR REPLACE TABLE {stage} ({ddl})").collect()
            if len(frame):
                append_pandas(session, stage_name, frame)
            return list(frame.columns)
        data.write.save_as_table(stage, mode="overwrite")
        return [validate_identifier(c.strip('"'), "column name") for c in data.columns]

    def _apply(self, session: Any, stage: str, columns: list[str], keep_after: date | None) -> None:
        existing = table_columns(session, self._database, self._schema, self._table_name)
        if self._wt_mode == "overwrite" or not existing:
            # One statement: readers see the old table or the new one (and new columns are fine).
            # COPY GRANTS keeps the privileges granted on the replaced table (a reverse-ETL role
            # reading SEGMENT_CHANGES): without it CREATE OR REPLACE drops them (Snowflake docs,
            # CREATE TABLE, COPY GRANTS; made the default by behaviour change bundle 2026_08).
            session.sql(f"CREATE OR REPLACE TABLE {self.fqn} COPY GRANTS AS SELECT * FROM {stage}").collect()
            if self._wt_mode == "replace_snapshot" and keep_after is not None:
                self._delete_before(session, keep_after)
            return
        missing = [c for c in existing if c not in columns]
        extra = [c for c in columns if c not in existing]
        if missing or extra:
            raise DatasetError(
                f"Cannot write to {self.fqn}: its columns differ from the new rows' (missing {missing}, "
                f"new {extra}). The table was written by another version of the project: rename or drop it "
                "(after exporting what you want to keep) and rerun."
            )
        cols = ", ".join(existing)
        # Snowflake: an explicit transaction should hold DML and queries only (a DDL statement
        # commits it), so the scratch table is created before BEGIN and dropped after COMMIT
        # (docs.snowflake.com/en/sql-reference/transactions, "Explicit transactions").
        session.sql("BEGIN TRANSACTION").collect()
        try:
            if self._wt_mode == "replace_snapshot":
                snap = self._snapshot_column
                session.sql(
                    f"DELETE FROM {self.fqn} WHERE {snap} IN (SELECT DISTINCT {snap} FROM {stage})"
                ).collect()
                if keep_after is not None:
                    self._delete_before(session, keep_after)
            session.sql(f"INSERT INTO {self.fqn} ({cols}) SELECT {cols} FROM {stage}").collect()
            session.sql("COMMIT").collect()
        except Exception:
            session.sql("ROLLBACK").collect()
            raise

    def _delete_before(self, session: Any, keep_after: date) -> None:
        """Retention: drop the snapshots older than ``keep_after``."""
        session.sql(
            f"DELETE FROM {self.fqn} WHERE {self._snapshot_column} < CAST(? AS DATE)",
            params=[keep_after.isoformat()],
        ).collect()
