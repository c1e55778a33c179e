"""Snowpark tables on the project's one warehouse session (built on kedro-datasets')."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Literal

from kedro.io.core import DatasetError
from kedro_datasets._typing import TablePreview
from kedro_datasets.snowflake import SnowparkTableDataset as _KedroSnowparkTableDataset

from customer_segmentation import warehouse
from customer_segmentation.warehouse.config import DEFAULT_DATABASE, DEFAULT_SCHEMA
from customer_segmentation.warehouse.errors import MissingColumnsError, MissingTableError
from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier
from customer_segmentation.warehouse.tables import table_columns

logger = logging.getLogger(__name__)

WriteMode = Literal["overwrite", "append", "merge"]


@dataclass(frozen=True)
class TableWrite:
    """A node's request to write ``data`` with a given mode instead of the catalog's default."""

    data: Any
    mode: WriteMode


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

    def _describe(self) -> dict[str, Any]:
        return {"table": self.fqn, "save_mode": self._mode}

    def load(self) -> Any:
        session = self.session
        columns = table_columns(session, self._database, self._schema, self._table_name)
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
        return session.table(self.fqn)

    def save(self, data: Any) -> None:
        mode: WriteMode = self._mode
        if isinstance(data, TableWrite):
            data, mode = data.data, data.mode
        if mode == "merge":
            self._merge(data)
            return
        if mode == "append" and not self._exists():
            # create the table first: some engines reject CREATE TABLE IF NOT EXISTS ... AS appends
            data.limit(0).write.save_as_table(self.fqn, mode="errorifexists")
        # kedro-datasets' save (pandas -> Snowpark, then save_as_table) with our mode
        self._save_args["mode"] = mode
        try:
            super().save(data)
        finally:
            self._save_args.pop("mode", None)

    def _merge(self, data: Any) -> None:
        """Insert the rows whose merge keys are not in the table yet (creates the table if needed)."""
        session = self.session
        if not table_columns(session, self._database, self._schema, self._table_name):
            data.limit(0).write.save_as_table(self.fqn, mode="errorifexists")
        source_sql = data.queries["queries"][-1]
        columns = [validate_identifier(c.strip('"'), "column name") for c in data.columns]
        on = " AND ".join(f"t.{k} = s.{k}" for k in self._merge_keys)
        cols = ", ".join(columns)
        values = ", ".join(f"s.{c}" for c in columns)
        session.sql(
            f"MERGE INTO {self.fqn} t USING ({source_sql}) s ON {on} "
            f"WHEN NOT MATCHED THEN INSERT ({cols}) VALUES ({values})"
        ).collect()

    def _exists(self) -> bool:
        try:
            return bool(table_columns(self.session, self._database, self._schema, self._table_name))
        except Exception as exc:  # pragma: no cover - exists() must not raise
            logger.debug("Could not check %s: %s", self.fqn, exc)
            return False

    def preview(self, nrows: int = 5) -> TablePreview:
        """A few rows for kedro-viz (``TablePreview``: pandas 'split' orientation)."""
        frame = self.session.table(self.fqn).limit(int(nrows)).to_pandas()
        return TablePreview(frame.astype(object).where(frame.notna(), None).to_dict(orient="split"))
