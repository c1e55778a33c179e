"""Warehouse tables that keep history: snapshot replacement in one transaction, pandas appends.

``WarehouseTableDataset`` extends the project's ``SnowparkTableDataset`` with:
- ``save_args.mode: replace_snapshot`` (with ``snapshot_column``): the rows of the snapshots
  present in the data replace those already stored (delete-then-insert in one transaction), so
  rerunning a day never duplicates it; a node may pass ``SnapshotWrite(data, keep_after=...)``
  to also drop snapshots older than a retention cut-off in the same transaction;
- pandas frames as well as Snowpark DataFrames, written with ``write_pandas`` (bulk COPY), the
  path that works on both Snowflake and the embedded warehouse.
The target changes in one transaction (``warehouse.tables.transaction``), so a crash, Ctrl-C or
SIGTERM leaves either the old or the new rows, never half of them. Rows of a Snowpark query that
does not read the table go straight from the query: DELETE + INSERT ... SELECT in the transaction
into an existing table, one CREATE TABLE ... AS SELECT for a missing one (a single statement, so
again all or nothing); other writes go first to a scratch table (a plain DDL step, outside the
transaction), dropped only once no transaction can be open (on Snowflake a DROP inside one would
commit it).

``ActivationFeedDataset`` is the activation feed: the last published segment of every customer
(``state_table``, SEGMENT_PUBLISHED) and an append-only feed of the differences from it
(``table_name``, SEGMENT_CHANGES), with a deterministic CHANGE_ID; see docs/monitoring.md.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError

from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier
from customer_segmentation.warehouse.tables import (
    append_pandas,
    create_table_sql,
    drop_tables_outside_transaction,
    forget_table_columns,
    insert_values,
    remember_table_columns,
    sql_type_of,
    table_columns,
    transaction,
)

logger = logging.getLogger(__name__)


def snowflake_type(datatype: Any) -> str:
    """The Snowflake column type of a Snowpark type (for a column added to an existing table)."""
    from snowflake.snowpark import types as T

    if isinstance(datatype, T.DecimalType):
        return f"NUMBER({datatype.precision},{datatype.scale})"
    if isinstance(datatype, (T.ByteType, T.ShortType, T.IntegerType, T.LongType)):
        return "NUMBER(38,0)"
    if isinstance(datatype, (T.FloatType, T.DoubleType)):
        return "DOUBLE"
    if isinstance(datatype, T.BooleanType):
        return "BOOLEAN"
    if isinstance(datatype, T.DateType):
        return "DATE"
    if isinstance(datatype, T.TimestampType):
        return "TIMESTAMP_NTZ"
    return "VARCHAR"


def single_query_sql(data: Any) -> str | None:
    """The SQL text of a Snowpark DataFrame that runs as one query with no bound values, else None.

    Such a frame can be pasted into another statement as a subquery: no temporary table its plan
    creates first (DDL), no post action, no ``?`` whose value is not in the text.
    """
    if not hasattr(data, "queries"):
        return None
    plan = data.queries
    queries, post_actions = plan.get("queries") or [], plan.get("post_actions") or []
    if len(queries) != 1 or post_actions:
        return None
    query = str(queries[0]).strip().rstrip(";")
    return None if "?" in query else query


@dataclass(frozen=True)
class SnapshotWrite:
    """Rows of one or more snapshots, plus the oldest snapshot date to keep (retention).

    ``only_if_missing``: the rows are known to be none (nothing new to record): the table is created
    from them when it does not exist yet, and otherwise nothing is written (no stage, no transaction).
    """

    data: Any
    keep_after: date | None = None
    only_if_missing: bool = False


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
            if data.only_if_missing and data.keep_after is None and self._exists():
                logger.info("%s: nothing new to record; left as it is", self.fqn)
                return
            data, keep_after = data.data, data.keep_after
        session = self.session
        query = self._direct_query(data)
        if query is not None:
            columns = [validate_identifier(c.strip('"'), "column name") for c in data.columns]
            if table_columns(session, self._database, self._schema, self._table_name):
                # rows added to an existing table straight from their query, no scratch table (the query
                # reads other tables only, and is one statement: nothing it runs can commit early)
                self._apply(session, f"({query})", columns, keep_after, lambda: data.schema)
            else:
                # the first write creates the table from the query in one statement (the staged path
                # wrote the rows twice: the first 1M-customer SEGMENT_HISTORY snapshot 0.47 s more);
                # typed as Snowpark types the stage, and never over a table created meanwhile
                data.write.save_as_table(self.fqn, mode="errorifexists")
                self._created(session, columns, keep_after)
            return
        stage_name = f"{self._table_name}__STAGE_{uuid.uuid4().hex[:8].upper()}"
        stage = qualified_name(self._database, self._schema, stage_name)
        try:
            columns = self._stage(session, data, stage_name, stage)
            self._apply(session, stage, columns, keep_after, lambda: session.table(stage).schema)
        finally:
            drop_tables_outside_transaction(session, [stage])

    def _direct_query(self, data: Any) -> str | None:
        """The SQL of a Snowpark DataFrame that can feed the table's DML directly, else None (staged first).

        Staging stays for pandas frames, for ``overwrite`` (one CREATE OR REPLACE from the stage), for
        frames that need more than one statement (a local frame's temporary table: DDL, which would
        commit the transaction), for bound parameters (their values are not in the text), and for a
        query that reads the target table itself (the DELETE before the INSERT would change its rows).
        The name check is textual, so it may stage when not needed, never the other way round.
        """
        if isinstance(data, pd.DataFrame) or self._wt_mode == "overwrite":
            return None
        query = single_query_sql(data)
        if query is None or re.search(
            rf"(?<![\w$]){re.escape(self._table_name)}(?![\w$])", query, re.IGNORECASE
        ):
            return None
        return query

    def _stage(self, session: Any, data: Any, stage_name: str, stage: str) -> list[str]:
        """Write the data to a scratch table; returns its column names."""
        if isinstance(data, pd.DataFrame):
            frame = data.reset_index(drop=True)
            frame.columns = [validate_identifier(str(c), "column name") for c in frame.columns]
            types = [sql_type_of(frame[c]) for c in frame.columns]
            ddl = ", ".join(f"{c} {t}" for c, t in zip(frame.columns, types, strict=True))
            session.sql(f"CREATE OR REPLACE TABLE {stage} ({ddl})").collect()
            # a few rows: one INSERT of bound values; more (or values not bound as they are): staged
            if len(frame) and not insert_values(session, stage, frame, types):
                append_pandas(session, stage_name, frame, self._database, self._schema)
            return list(frame.columns)
        data.write.save_as_table(stage, mode="overwrite")
        return [validate_identifier(c.strip('"'), "column name") for c in data.columns]

    def _apply(
        self,
        session: Any,
        source: str,
        columns: list[str],
        keep_after: date | None,
        schema: Callable[[], Any],
    ) -> None:
        """The rows of ``source`` (the scratch table, or a parenthesised query) into the table."""
        existing = table_columns(session, self._database, self._schema, self._table_name)
        if self._wt_mode == "overwrite" or not existing:
            # One statement: readers see the old table or the new one (and new columns are fine).
            # COPY GRANTS keeps the privileges granted on the replaced table (a reverse-ETL role
            # reading SEGMENT_CHANGES): without it CREATE OR REPLACE drops them (Snowflake docs,
            # CREATE TABLE, COPY GRANTS; made the default by behaviour change bundle 2026_08).
            session.sql(f"CREATE OR REPLACE TABLE {self.fqn} COPY GRANTS AS SELECT * FROM {source}").collect()
            self._created(session, columns, keep_after)
            return
        missing = [c for c in existing if c not in columns]
        extra = [c for c in columns if c not in existing]
        if extra and not missing:
            # new columns of a newer project version (e.g. SEGMENT_HISTORY's P_ALIVE and CLV): added to the
            # table, NULL in the rows already there. DDL, so before the transaction below.
            self._add_columns(session, schema(), extra)
            existing, extra = [*existing, *extra], []
        if missing or extra:
            raise DatasetError(
                f"Cannot write to {self.fqn}: its columns differ from the new rows' (missing {missing}, "
                f"new {extra}). The table was written by another version of the project: rename or drop it "
                "(after exporting what you want to keep) and rerun."
            )
        cols = ", ".join(existing)
        # only DML inside: the scratch table was created before and is dropped after (save())
        with transaction(session):
            if self._wt_mode == "replace_snapshot":
                snap = self._snapshot_column
                session.sql(
                    f"DELETE FROM {self.fqn} WHERE {snap} IN (SELECT DISTINCT {snap} FROM {source})"
                ).collect()
                if keep_after is not None:
                    self._delete_before(session, keep_after)
            session.sql(f"INSERT INTO {self.fqn} ({cols}) SELECT {cols} FROM {source}").collect()

    def _created(self, session: Any, columns: list[str], keep_after: date | None) -> None:
        """After the table was (re)created with ``columns`` in one statement: cache them, apply retention."""
        remember_table_columns(session, self._database, self._schema, self._table_name, columns)
        if self._wt_mode == "replace_snapshot" and keep_after is not None:
            self._delete_before(session, keep_after)

    def _add_columns(self, session: Any, schema: Any, names: list[str]) -> None:
        types = {f.name.strip('"').upper(): f.datatype for f in schema.fields}
        for name in names:
            sql_type = snowflake_type(types[name])
            session.sql(f"ALTER TABLE {self.fqn} ADD COLUMN {name} {sql_type}").collect()
            logger.info("%s: column %s %s added (NULL in the rows written before)", self.fqn, name, sql_type)
        forget_table_columns(session, self._database, self._schema, self._table_name)

    def _delete_before(self, session: Any, keep_after: date) -> None:
        """Retention: drop the snapshots older than ``keep_after``."""
        session.sql(
            f"DELETE FROM {self.fqn} WHERE {self._snapshot_column} < CAST(? AS DATE)",
            params=[keep_after.isoformat()],
        ).collect()


# --- the activation feed -------------------------------------------------------------------------

#: SEGMENT_PUBLISHED: the segment each customer was last published with (one row per customer).
PUBLISHED_COLUMNS: dict[str, str] = {
    "CUSTOMER_ID": "VARCHAR",
    "SEGMENT_ID": "NUMBER(38,0)",
    "SEGMENT_LABEL": "VARCHAR",
    "RFM_SEGMENT": "VARCHAR",
    "SNAPSHOT_DATE": "DATE",
    "MODEL_VERSION": "VARCHAR",
    "LAST_CHANGE_SEQ": "NUMBER(38,0)",
    "LAST_CHANGE_ID": "VARCHAR",
    "RUN_ID": "VARCHAR",
    "PUBLISHED_AT": "TIMESTAMP_NTZ",
}
#: SEGMENT_CHANGES: one row per published change, appended, never rewritten (docs/monitoring.md).
CHANGE_COLUMNS: dict[str, str] = {
    "CHANGE_ID": "VARCHAR",
    "CUSTOMER_ID": "VARCHAR",
    "CHANGE_SEQ": "NUMBER(38,0)",
    "FROM_SEGMENT_ID": "NUMBER(38,0)",
    "FROM_SEGMENT": "VARCHAR",
    "TO_SEGMENT_ID": "NUMBER(38,0)",
    "TO_SEGMENT": "VARCHAR",
    "FROM_RFM_SEGMENT": "VARCHAR",
    "TO_RFM_SEGMENT": "VARCHAR",
    "SNAPSHOT_DATE": "DATE",
    "PREVIOUS_SNAPSHOT_DATE": "DATE",
    "MODEL_VERSION": "VARCHAR",
    "RUN_ID": "VARCHAR",
    "PUBLISHED_AT": "TIMESTAMP_NTZ",
}
#: The columns of today's segments that a publication needs (SEGMENT_HISTORY has them).
SEGMENT_COLUMNS = ("CUSTOMER_ID", "SEGMENT_ID", "SEGMENT_LABEL", "RFM_SEGMENT", "MODEL_VERSION")


@dataclass(frozen=True)
class FeedPublication:
    """Today's segment of every customer, to publish against what was published before.

    ``segments``: a Snowpark DataFrame with :data:`SEGMENT_COLUMNS`, one row per customer;
    ``snapshot_date``: the snapshot they come from; ``published_at``: the run's start (UTC,
    naive); ``keep_after``: feed rows of older snapshots are deleted (retention), None keeps all.
    """

    segments: Any
    snapshot_date: date
    run_id: str
    published_at: datetime
    keep_after: date | None = None


class ActivationFeedDataset(SnowparkTableDataset):
    """The activation feed (``table_name``) and the published state it is the difference from (``state_table``).

    ``save(FeedPublication)`` compares today's segment of every customer with the segment last
    published for them (SEGMENT_PUBLISHED) and, in ONE transaction, appends a row to the feed for
    each customer whose segment label differs and updates the published state (changed customers,
    and new ones, who enter the state without a feed row). A customer's change is therefore sent
    exactly once, whatever the reruns, same-date snapshots or back-dated loads; a move and a move
    back are two rows. A snapshot older than the one last published changes nothing.

    Before the first publication the published state is the latest ``history_table`` snapshot
    before today's (what the former feed compared with); rows of a former-format feed table (no
    CHANGE_ID) are kept in ``<table>_LEGACY`` and, when they are today's, count as published.
    ``load()`` returns the feed (a Snowpark DataFrame).
    """

    def __init__(
        self,
        *,
        state_table: str = "SEGMENT_PUBLISHED",
        history_table: str = "SEGMENT_HISTORY",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self._state_table = validate_identifier(state_table, "table name (state_table)")
        self._history_table = validate_identifier(history_table, "table name (history_table)")

    def _describe(self) -> dict[str, Any]:
        return {"table": self.fqn, "state_table": self._fqn(self._state_table)}

    def save(self, data: FeedPublication) -> None:
        if not isinstance(data, FeedPublication):
            raise DatasetError(
                f"{type(self).__name__} saves a FeedPublication (monitoring's build_activation_feed), "
                f"not {type(data).__name__}."
            )
        session = self.session
        legacy = self._ensure_tables(session)  # DDL: before any transaction
        state, feed = self._fqn(self._state_table), self.fqn
        snapshot = data.snapshot_date.isoformat()
        latest = session.sql(f"SELECT MAX(SNAPSHOT_DATE) FROM {state}").collect()[0][0]
        if latest is not None and _to_date(latest) > data.snapshot_date:
            logger.warning(
                "Snapshot %s is older than the segments already published (%s): the activation feed %s is "
                "left as it is (a feed only moves forward; rerun with the latest events to publish again)",
                snapshot,
                _to_date(latest).isoformat(),
                feed,
            )
            return
        suffix = uuid.uuid4().hex[:8].upper()
        segments = data.segments.select(*SEGMENT_COLUMNS)
        # today's segments go into the difference as a subquery when their frame is one plain query
        # (a query over SEGMENT_HISTORY: 1M rows not copied first), else through a scratch table
        inline = single_query_sql(segments)
        today = f"({inline})" if inline is not None else self._fqn(f"{self._table_name}__TODAY_{suffix}")
        diff = self._fqn(f"{self._table_name}__DIFF_{suffix}")
        published_at = data.published_at.strftime("%Y-%m-%d %H:%M:%S.%f")
        try:
            # scratch tables (DDL) first: today's segments unless inlined, then their difference from the state
            if inline is None:
                segments.write.save_as_table(today, mode="overwrite")
            empty = latest is None and not session.sql(f"SELECT 1 FROM {state} LIMIT 1").collect()
            baseline = self._baseline_sql(session, data.snapshot_date, legacy) if empty else None
            session.sql(f"CREATE OR REPLACE TABLE {diff} AS {self._diff_sql(today, baseline)}").collect()
            counts = session.sql(
                f"SELECT SUM(CASE WHEN CHANGED THEN 1 ELSE 0 END), SUM(CASE WHEN CHANGED THEN 0 ELSE 1 END) "
                f"FROM {diff}"
            ).collect()[0]
            changed, entered = int(counts[0] or 0), int(counts[1] or 0)
            seeded = 0
            with transaction(session):
                if baseline is not None:
                    # the first publication starts from what the former feed had published
                    session.sql(f"INSERT INTO {state} ({', '.join(PUBLISHED_COLUMNS)}) {baseline}").collect()
                    seeded = int(session.sql(f"SELECT COUNT(*) FROM {state}").collect()[0][0])
                self._publish(session, diff, snapshot, data.run_id, published_at)
                if data.keep_after is not None:
                    session.sql(
                        f"DELETE FROM {feed} WHERE SNAPSHOT_DATE < CAST(? AS DATE)",
                        params=[data.keep_after.isoformat()],
                    ).collect()
        finally:
            drop_tables_outside_transaction(session, [diff] if inline is not None else [today, diff])
        logger.info(
            "Activation feed %s: %s change(s) published for snapshot %s (%s customer(s) entered the published "
            "state without a change row%s)",
            feed,
            f"{changed:,}",
            snapshot,
            f"{entered:,}",
            f"; the state started from {seeded:,} previously published segments" if seeded else "",
        )

    def _ensure_tables(self, session: Any) -> str | None:
        """Create the state and feed tables when missing; a former-format feed is renamed, kept whole.

        Returns the legacy feed table (qualified) when one exists.
        """
        legacy_name = f"{self._table_name}_LEGACY"
        columns = table_columns(session, self._database, self._schema, self._table_name)
        if columns and "CHANGE_ID" not in columns:
            if table_columns(session, self._database, self._schema, legacy_name):
                raise DatasetError(
                    f"{self.fqn} has the former layout (no CHANGE_ID) and {self._fqn(legacy_name)} exists already: "
                    f"rename or drop one of them (after exporting what your CRM still needs), then rerun."
                )
            session.sql(f"ALTER TABLE {self.fqn} RENAME TO {self._fqn(legacy_name)}").collect()
            forget_table_columns(session, self._database, self._schema, self._table_name)
            logger.warning(
                "%s had the former layout (the latest changes only, rewritten every run); it is kept as %s and "
                "%s is now an append-only feed with a CHANGE_ID per row (docs/monitoring.md)",
                self.fqn,
                self._fqn(legacy_name),
                self.fqn,
            )
        for table, spec in ((self._state_table, PUBLISHED_COLUMNS), (self._table_name, CHANGE_COLUMNS)):
            existing = table_columns(session, self._database, self._schema, table)
            if not existing:
                session.sql(create_table_sql(self._database, self._schema, table, spec)).collect()
                remember_table_columns(session, self._database, self._schema, table, list(spec))
            elif [c for c in spec if c not in existing]:
                raise DatasetError(
                    f"{self._fqn(table)} lacks column(s) {', '.join(c for c in spec if c not in existing)}: it was "
                    "not written by this version of the project. Rename it (after exporting what you need) and rerun."
                )
        if table_columns(session, self._database, self._schema, legacy_name):
            return self._fqn(legacy_name)
        return None

    def _baseline_sql(self, session: Any, snapshot_date: date, legacy: str | None) -> str | None:
        """SELECT of the state rows to start from, or None (no earlier snapshot: everyone is new).

        The latest history snapshot before today's is what the former feed compared with; when a
        former-format feed holds today's changes (a same-day rerun after the upgrade), its TO
        segments were published too and override that snapshot.
        """
        history = self._fqn(self._history_table)
        if not table_columns(session, self._database, self._schema, self._history_table):
            return None
        # dates as literals: they are rendered from date objects (no user text reaches the SQL), and
        # the SELECT is pasted into a CREATE TABLE ... AS and an INSERT that take no other binds
        day = snapshot_date.isoformat()
        previous = session.sql(
            f"SELECT MAX(SNAPSHOT_DATE) FROM {history} WHERE SNAPSHOT_DATE < CAST('{day}' AS DATE)"
        ).collect()[0][0]
        if previous is None:
            return None
        before = _to_date(previous).isoformat()
        rows = (
            f"SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL, RFM_SEGMENT, SNAPSHOT_DATE, MODEL_VERSION "
            f"FROM {history} WHERE SNAPSHOT_DATE = CAST('{before}' AS DATE)"
        )
        if legacy is not None:
            sent = (
                f"SELECT CUSTOMER_ID, TO_SEGMENT_ID AS SEGMENT_ID, TO_SEGMENT AS SEGMENT_LABEL, "
                f"TO_RFM_SEGMENT AS RFM_SEGMENT, SNAPSHOT_DATE, MODEL_VERSION FROM {legacy} "
                f"WHERE SNAPSHOT_DATE = CAST('{day}' AS DATE)"
            )
            rows = (
                f"SELECT * FROM ({rows}) AS H WHERE CUSTOMER_ID NOT IN (SELECT CUSTOMER_ID FROM ({sent}) AS L0) "
                f"UNION ALL {sent}"
            )
        return (
            "SELECT CUSTOMER_ID, CAST(SEGMENT_ID AS NUMBER(38,0)) AS SEGMENT_ID, SEGMENT_LABEL, RFM_SEGMENT, "
            "CAST(SNAPSHOT_DATE AS DATE) AS SNAPSHOT_DATE, MODEL_VERSION, "
            "CAST(0 AS NUMBER(38,0)) AS LAST_CHANGE_SEQ, CAST(NULL AS VARCHAR) AS LAST_CHANGE_ID, "
            "CAST(NULL AS VARCHAR) AS RUN_ID, CAST(NULL AS TIMESTAMP_NTZ) AS PUBLISHED_AT "
            f"FROM ({rows}) AS B"
        )

    def _diff_sql(self, today: str, baseline: str | None) -> str:
        """Customers whose label differs from the published one (CHANGED) or who were never published."""
        published = f"({baseline})" if baseline is not None else self._fqn(self._state_table)
        return (
            "SELECT T.CUSTOMER_ID, T.SEGMENT_ID, T.SEGMENT_LABEL, T.RFM_SEGMENT, T.MODEL_VERSION, "
            "P.SEGMENT_ID AS FROM_SEGMENT_ID, P.SEGMENT_LABEL AS FROM_SEGMENT, P.RFM_SEGMENT AS FROM_RFM_SEGMENT, "
            "P.SNAPSHOT_DATE AS PREVIOUS_SNAPSHOT_DATE, P.CUSTOMER_ID IS NOT NULL AS CHANGED, "
            "CAST(COALESCE(P.LAST_CHANGE_SEQ, 0) + 1 AS NUMBER(38,0)) AS CHANGE_SEQ "
            f"FROM {today} AS T LEFT JOIN {published} AS P ON P.CUSTOMER_ID = T.CUSTOMER_ID "
            "WHERE P.CUSTOMER_ID IS NULL OR P.SEGMENT_LABEL <> T.SEGMENT_LABEL"
        )

    def _publish(self, session: Any, diff: str, snapshot: str, run_id: str, published_at: str) -> None:
        """The feed rows of the changed customers, then the new published state of changed and new ones."""
        state, feed = self._fqn(self._state_table), self.fqn
        # the id of a change: who, which of their changes, from what to what, at which snapshot; the
        # same on every engine (MD5 of text, no session format involved)
        change_id = (
            "MD5(CUSTOMER_ID || '|' || CAST(CHANGE_SEQ AS VARCHAR) || '|' || FROM_SEGMENT || '|' || "
            "SEGMENT_LABEL || '|' || ?)"
        )
        ts = "CAST(? AS TIMESTAMP_NTZ)"
        session.sql(
            f"INSERT INTO {feed} ({', '.join(CHANGE_COLUMNS)}) "
            f"SELECT {change_id}, CUSTOMER_ID, CHANGE_SEQ, FROM_SEGMENT_ID, FROM_SEGMENT, SEGMENT_ID, "
            f"SEGMENT_LABEL, FROM_RFM_SEGMENT, RFM_SEGMENT, CAST(? AS DATE), PREVIOUS_SNAPSHOT_DATE, "
            f"MODEL_VERSION, ?, {ts} FROM {diff} WHERE CHANGED",
            params=[snapshot, snapshot, run_id, published_at],
        ).collect()
        session.sql(f"DELETE FROM {state} WHERE CUSTOMER_ID IN (SELECT CUSTOMER_ID FROM {diff})").collect()
        session.sql(
            f"INSERT INTO {state} ({', '.join(PUBLISHED_COLUMNS)}) "
            f"SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL, RFM_SEGMENT, CAST(? AS DATE), MODEL_VERSION, "
            f"CASE WHEN CHANGED THEN CHANGE_SEQ ELSE 0 END, "
            f"CASE WHEN CHANGED THEN {change_id} END, ?, {ts} FROM {diff}",
            params=[snapshot, snapshot, run_id, published_at],
        ).collect()


def _to_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
