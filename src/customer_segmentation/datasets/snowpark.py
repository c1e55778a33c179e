"""Snowpark tables on the project's one warehouse session (built on kedro-datasets')."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any, Literal

from kedro.io.core import DatasetError
from kedro_datasets._typing import TablePreview
from kedro_datasets.snowflake import SnowparkTableDataset as _KedroSnowparkTableDataset

from customer_segmentation import warehouse
from customer_segmentation.errors import MissingColumnsError, MissingTableError
from customer_segmentation.warehouse.config import DEFAULT_DATABASE, DEFAULT_SCHEMA
from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier
from customer_segmentation.warehouse.tables import (
    drop_tables_outside_transaction,
    forget_table_columns,
    remember_table_columns,
    table_columns,
)

logger = logging.getLogger(__name__)

WriteMode = Literal["overwrite", "append", "merge"]
TableType = Literal["permanent", "transient", "temporary"]
_TABLE_TYPES = ("permanent", "transient", "temporary")


#: Marker column of a complete rebuild (see ``save_args.rebuild_marker``); never written to the table.
REBUILD_MARKER = "REBUILD_MARKER__"


@dataclass(frozen=True)
class ScopedMerge:
    """Rows for a merge table, with the only target rows their merge keys can match.

    A node hands this to a ``mode: merge`` dataset when it knows that a row whose keys equal a
    source row's also has ``column`` (a TIMESTAMP_NTZ column; the bounds are its text) NULL or in
    ``(after, up_to]`` (e.g. RECORD_ID hashes
    LOADED_AT, and the batch's LOADED_AT are in that range): the MERGE then compares the source
    only with those target rows (``ON keys AND (t.column IS NULL OR t.column > after AND
    t.column <= up_to)``, the bounds bound as values), so a daily batch is not compared with the
    whole table. The rows inserted are the same as an unscoped merge's when that holds; a bound
    that is None leaves that side open.
    """

    rows: Any
    column: str
    after: str | None = None
    up_to: str | None = None


class SnowparkTableDataset(_KedroSnowparkTableDataset):
    """A Snowflake table as a Snowpark DataFrame, on the shared session.

    Differences from kedro-datasets' class it extends:
    - the session comes from ``customer_segmentation.warehouse`` (one per run, Snowflake or
      embedded), so no secret is held by the dataset;
    - names are validated as identifiers; loading a missing table or one that lacks
      ``load_args.required_columns`` fails with a message that says what to run;
      ``load_args.if_missing`` (column -> SQL type) returns an empty frame instead;
    - ``save_args.mode: merge`` with ``merge_keys`` inserts only rows whose keys are new
      (idempotent appends);
    - ``save_args.rebuild_marker: true`` (merge tables only) lets a node hand over a complete
      rebuild of the table: a frame that has the column :data:`REBUILD_MARKER` (its values do not
      matter; the column is dropped) replaces the table's content in one ``CREATE OR REPLACE``
      instead of being merged. The save mode itself stays the catalog's: without the column the
      frame is merged, and a table without ``rebuild_marker`` refuses such a frame. A schema-level
      marker, so that an empty rebuild (e.g. no rejected event at all) still empties the table;
    - ``save_args.table_type`` (permanent | transient | temporary, default permanent) and
      ``save_args.copy_grants`` (default true) control how ``mode: overwrite`` re-creates the table:
      Snowflake's ``CREATE OR REPLACE`` drops the grants of the replaced table unless it says
      COPY GRANTS (https://docs.snowflake.com/en/sql-reference/sql/create-table, "COPY GRANTS"),
      and keeps every replaced permanent copy for Time Travel plus 7 days of Fail-safe, while
      transient tables have no Fail-safe (https://docs.snowflake.com/user-guide/data-cdp-storage-costs).
      A temporary table lives only in the run's session and is invisible to other sessions
      (https://docs.snowflake.com/user-guide/tables-temp-transient): per-run scratch that
      concurrent runs cannot share; it is created in the session's current database and schema;
    - ``preview()`` gives kedro-viz a small table.
    """

    def __init__(  # noqa: PLR0913
        self,
        *,
        table_name: str,
        schema: str | None = None,
        database: str | None = None,
        load_args: dict[str, Any] | None = None,
        save_args: dict[str, Any] | None = None,
        credentials: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> None:
        creds = credentials or {}
        database = validate_identifier(database or creds.get("database") or DEFAULT_DATABASE, "database name")
        schema = validate_identifier(schema or creds.get("schema") or DEFAULT_SCHEMA, "schema name")
        table_name = validate_identifier(table_name, "table name")
        load_args = dict(load_args or {})
        save_args = dict(save_args or {})
        self._required_columns = [str(c).upper() for c in load_args.pop("required_columns", [])]
        self._if_missing: dict[str, str] | None = load_args.pop("if_missing", None)
        self._missing_hint: str = load_args.pop("missing_hint", "")
        self._mode: WriteMode = save_args.pop("mode", "overwrite")
        self._merge_keys = [validate_identifier(k, "merge key") for k in save_args.pop("merge_keys", [])]
        if self._mode not in ("overwrite", "append", "merge"):
            raise DatasetError(f"save_args.mode must be overwrite, append or merge, not {self._mode!r}")
        if self._mode == "merge" and not self._merge_keys:
            raise DatasetError("save_args.mode 'merge' needs save_args.merge_keys")
        self._rebuild_marker = save_args.pop("rebuild_marker", False)
        if not isinstance(self._rebuild_marker, bool):
            raise DatasetError(
                f"save_args.rebuild_marker of {table_name} must be true or false, not {self._rebuild_marker!r}"
            )
        if self._rebuild_marker and self._mode != "merge":
            raise DatasetError(f"save_args.rebuild_marker of {table_name} needs save_args.mode 'merge'")
        self._table_type: TableType = str(save_args.pop("table_type", "permanent") or "permanent").lower()  # type: ignore[assignment]
        if self._table_type not in _TABLE_TYPES:
            raise DatasetError(
                f"save_args.table_type of {table_name} must be one of {', '.join(_TABLE_TYPES)}, not {self._table_type!r}"
            )
        copy_grants = save_args.pop("copy_grants", True)
        if not isinstance(copy_grants, bool):
            raise DatasetError(
                f"save_args.copy_grants of {table_name} must be true or false, not {copy_grants!r}"
            )
        # a temporary table is new in each session: there are no grants to copy
        self._copy_grants = copy_grants and self._table_type != "temporary"
        if self._table_type == "temporary" and self._mode != "overwrite":
            raise DatasetError(
                f"save_args.table_type 'temporary' of {table_name} needs save_args.mode 'overwrite'"
            )
        super().__init__(
            table_name=table_name,
            schema=schema,
            database=database,
            load_args=load_args,
            save_args=save_args,
            credentials={"database": database, "schema": schema},
            metadata=metadata,
        )

    @property
    def session(self) -> Any:
        return warehouse.get_session()

    @property
    def fqn(self) -> str:
        return qualified_name(self._database, self._schema, self._table_name)

    def _fqn(self, table: str) -> str:
        """Another table of this dataset's database and schema (datasets that write several tables)."""
        return qualified_name(self._database, self._schema, table)

    @property
    def _target(self) -> str:
        """Name to read and write: a temporary table is addressed unqualified, in the session's schema."""
        return self._table_name if self._table_type == "temporary" else self.fqn

    def _describe(self) -> dict[str, Any]:
        return {"table": self.fqn, "save_mode": self._mode, "table_type": self._table_type}

    def _columns(self) -> list[str]:
        return table_columns(self.session, self._database, self._schema, self._table_name)

    def load(self) -> Any:
        session = self.session
        columns = self._columns()
        if not columns:
            if self._if_missing is not None:
                select = ", ".join(
                    f"CAST(NULL AS {sql_type}) AS {validate_identifier(name, 'column name')}"
                    for name, sql_type in self._if_missing.items()
                )
                return session.sql(f"SELECT {select} WHERE 1 = 0")
            raise MissingTableError(
                f"Table {self.fqn} does not exist in the {warehouse.current_settings().target}. "
                + (self._missing_hint or "Check the table name in conf/base/catalog.yml.")
            )
        missing = [c for c in self._required_columns if c not in columns]
        if missing:
            raise MissingColumnsError(
                f"Table {self.fqn} lacks required column(s) {', '.join(missing)} "
                f"(it has {', '.join(columns)}). See the table contract in the README."
            )
        return session.table(self._target)

    def save(self, data: Any) -> None:
        mode: WriteMode = self._mode
        scope = None
        if isinstance(data, ScopedMerge):
            if mode != "merge":
                raise DatasetError(f"{self.fqn} got rows for a scoped merge but its save mode is {mode!r}.")
            data, scope = data.rows, data
        if not hasattr(data, "write"):  # pandas: kedro-datasets' conversion
            data = self.session.create_dataframe(data)
        if REBUILD_MARKER in (c.strip('"').upper() for c in data.columns):
            if not self._rebuild_marker:
                raise DatasetError(
                    f"{self.fqn} got a complete rebuild (column {REBUILD_MARKER}) but its catalog entry does not "
                    "allow one: add `rebuild_marker: true` to its save_args (merge tables only)."
                )
            data = data.drop(REBUILD_MARKER)
            # the rebuild replaces the table in one statement (CREATE OR REPLACE ... COPY GRANTS)
            mode = "overwrite"
        session = self.session
        if mode == "merge":
            self._merge(data, scope)
            return
        if mode == "append" and not self._exists():
            # create the table first: some engines reject CREATE TABLE IF NOT EXISTS ... AS appends
            self._create_empty(data)
        try:
            if mode == "overwrite":
                self._write(data, self._target, "overwrite", self._table_type, self._copy_grants)
            else:
                data.write.save_as_table(self._target, mode="append", **self._save_args)
        except BaseException:
            forget_table_columns(session, self._database, self._schema, self._table_name)
            raise
        if mode == "overwrite" or self._table_type == "temporary":
            # the run now knows this table's columns; a temporary table is not listed in the
            # embedded warehouse's INFORMATION_SCHEMA, so this entry is how a later load finds it
            remember_table_columns(session, self._database, self._schema, self._table_name, data.columns)

    def _write(self, data: Any, name: str, mode: str, table_type: str, copy_grants: bool) -> None:
        kwargs = dict(self._save_args)
        if table_type != "permanent":
            kwargs["table_type"] = table_type
        if copy_grants:
            kwargs["copy_grants"] = True
        data.write.save_as_table(name, mode=mode, **kwargs)

    def _create_empty(self, data: Any) -> None:
        self._write(data.limit(0), self.fqn, "errorifexists", self._table_type, False)
        remember_table_columns(self.session, self._database, self._schema, self._table_name, data.columns)

    def _merge(self, data: Any, scope: ScopedMerge | None = None) -> None:
        """Insert the rows whose merge keys are not in the table yet (creates the table if needed).

        With a ``scope`` (:class:`ScopedMerge`), only the target rows in its range are compared.

        A source whose plan is one SELECT is merged from that SELECT as a subquery (MERGE's USING
        takes "a table or subquery", https://docs.snowflake.com/en/sql-reference/sql/merge): no
        second copy of the rows is written. A plan of several statements (large query breakdown,
        temp objects) cannot be pasted into a MERGE, and ``Table.merge`` is not accepted by the
        embedded warehouse: such a source is first materialised in a temporary table of this
        session, merged from there and dropped (it would vanish with the session anyway).
        MERGE ... WHEN NOT MATCHED THEN INSERT inserts only rows without a match: rerunning adds nothing.
        """
        session = self.session
        if not self._columns():
            self._create_empty(data)
        columns = [validate_identifier(c.strip('"'), "column name") for c in data.columns]
        on = " AND ".join(f"t.{k} = s.{k}" for k in self._merge_keys)
        params: list[Any] = []
        if scope is not None:
            on, params = self._scoped(on, scope)
        cols = ", ".join(columns)
        values = ", ".join(f"s.{c}" for c in columns)
        plan = data.queries
        if len(plan.get("queries", [])) == 1 and not plan.get("post_actions"):
            source = f"({plan['queries'][0]})"
            session.sql(
                f"MERGE INTO {self.fqn} t USING {source} s ON {on} "
                f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})",
                params=params or None,
            ).collect()
            return
        stage = validate_identifier(f"{self._table_name}_STAGE_{uuid.uuid4().hex[:12].upper()}", "table name")
        self._write(data, stage, "overwrite", "temporary", False)
        try:
            session.sql(
                f"MERGE INTO {self.fqn} t USING {stage} s ON {on} "
                f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})",
                params=params or None,
            ).collect()
        finally:
            drop_tables_outside_transaction(session, [stage])

    def _scoped(self, on: str, scope: ScopedMerge) -> tuple[str, list[Any]]:
        """``on`` restricted to the target rows in ``scope``'s range, and the bound values."""
        column = validate_identifier(scope.column, "column name")
        if column not in self._columns():
            raise DatasetError(f"{self.fqn} has no column {column} to scope a merge by.")
        bounds, params = [], []
        if scope.after is not None:
            bounds.append(f"t.{column} > CAST(? AS TIMESTAMP_NTZ)")
            params.append(str(scope.after))
        if scope.up_to is not None:
            bounds.append(f"t.{column} <= CAST(? AS TIMESTAMP_NTZ)")
            params.append(str(scope.up_to))
        if not bounds:
            return on, []
        return f"{on} AND (t.{column} IS NULL OR ({' AND '.join(bounds)}))", params

    def _exists(self) -> bool:
        try:
            return bool(self._columns())
        except Exception as exc:  # pragma: no cover - exists() must not raise
            logger.debug("Could not check %s: %s", self.fqn, exc)
            return False

    def preview(self, nrows: int = 5) -> TablePreview:
        """A few rows for kedro-viz (``TablePreview``: pandas 'split' orientation).

        Empty for a table that does not exist (yet), e.g. a temporary table outside its run.
        """
        if not self._exists():
            return TablePreview({"index": [], "columns": [], "data": []})
        frame = self.session.table(self._target).limit(int(nrows)).to_pandas()
        return TablePreview(frame.astype(object).where(frame.notna(), None).to_dict(orient="split"))
