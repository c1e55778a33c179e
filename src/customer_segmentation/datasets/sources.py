"""Declared sources as datasets: read them in the warehouse, land their new rows in RAW_DATA.

``SourceReaderDataset`` loads a :class:`SourceReader`: the source tables mapped onto the
contract (``sources/mapping.py``), the watermark of each source (SOURCE_STATE) and the event
ids each source has landed already. Nothing is written through it.

``SourcePullDataset`` saves :class:`SourcePull` objects (one per source, built by the ingestion
pipeline's first node) through the same path as ``load_events`` (it *is* the file-load dataset,
extended), so every guarantee of file loads holds for sources:

- demo and user data never mix: a pull that lands rows first removes a demo-only RAW_DATA
  (``demo/purge.py``), exactly as a first file load does;
- the pull is registered in LOAD_HISTORY as 'loading' (its LOADED_AT taken in that statement,
  strictly after every stamp) before its rows are written, so ingestion never moves its watermark
  past rows still being written;
- the rows, the LOAD_HISTORY row marked 'loaded' and the source's new watermark (SOURCE_STATE)
  are written in ONE transaction: a run killed before COMMIT leaves no row and the old watermark,
  and the next pull reads the same rows again (the stale 'loading' row is removed first);
- a source row is landed at most once per EVENT_ID and source (anti-join on RAW_DATA), so the
  rows at the watermark value, read again by the next pull, are not doubled.

File sources (``file:``) are saved as file loads (once per content, SHA-256).
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation.clock import now_utc as _now_utc
from customer_segmentation.datasets.event_files import EventFileLoad, EventFileLoadDataset
from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.demo.purge import remove_demo_before_first_load
from customer_segmentation.sources.declarations import Source, SourceDeclarationError
from customer_segmentation.sources.files import sanitized_names, to_text
from customer_segmentation.sources.mapping import (
    INCREMENTAL,
    MappedSource,
    map_frame,
    numbered,
    read_table,
    watermark_literal,
)
from customer_segmentation.warehouse.identifiers import validate_identifier
from customer_segmentation.warehouse.tables import (
    RAW_EVENT_COLUMNS,
    append_pandas,
    create_table_sql,
    table_columns,
    transaction,
)

logger = logging.getLogger(__name__)

#: SOURCE_STATE: one row per pull that moved a source's watermark (the newest PULL_NO is current).
SOURCE_STATE_COLUMNS: dict[str, str] = {
    "SOURCE_NAME": "VARCHAR",
    "SOURCE_TABLE": "VARCHAR",
    "INCREMENTAL_BY": "VARCHAR",
    "PULL_NO": "NUMBER(38,0)",
    "WATERMARK": "VARCHAR",
    "WATERMARK_TYPE": "VARCHAR",
    "ROWS_READ": "NUMBER(38,0)",
    "ROWS_LANDED": "NUMBER(38,0)",
    "LOADED_AT": "TIMESTAMP_NTZ",
    "RUN_ID": "VARCHAR",
    "UPDATED_AT": "TIMESTAMP_NTZ",
}


def encode_watermark(value: Any) -> tuple[str, str]:
    """(text, type) of a watermark value, to store it in SOURCE_STATE without losing its type."""
    if isinstance(value, datetime):
        return value.isoformat(sep=" "), "timestamp"
    if isinstance(value, date):
        return value.isoformat(), "date"
    if isinstance(value, bool):
        return str(value), "text"
    if isinstance(value, (int, Decimal)):
        return str(value), "number"
    if isinstance(value, float):
        return repr(value), "float"
    return str(value), "text"


def decode_watermark(text: str | None, kind: str | None) -> Any:
    if text is None:
        return None
    if kind == "timestamp":
        return datetime.fromisoformat(text)
    if kind == "date":
        return date.fromisoformat(text)
    if kind == "number":
        return Decimal(text)
    if kind == "float":
        return float(text)
    return text


@dataclass
class SourcePull:
    """One source's pending rows: a table source's lazy frame, or a file source's file load."""

    source: Source
    frame: DataFrame | None = None  # contract text columns (+ INCREMENTAL_VALUE__), new rows only
    rows_read: int = 0  # source rows in the watermark range (what this pull reads)
    rows_new: int = 0  # of those, rows whose EVENT_ID this source has not landed yet
    watermark_from: Any = None
    watermark_to: Any = None
    file_load: EventFileLoad | None = None
    skipped: str | None = None  # why nothing was read (e.g. a declared file that is absent)
    info: dict[str, Any] = field(default_factory=dict)


class SourceReader:
    """Read access to declared sources for one run (what ``SourceReaderDataset`` loads)."""

    def __init__(self, session: Any, database: str, schema: str, raw_table: str, state_table: str) -> None:
        self.session, self.database, self.schema = session, database, schema
        self.raw_table, self.state_table = raw_table, state_table

    def _fqn(self, table: str) -> str:
        return f"{self.database}.{self.schema}.{table}"

    def mapped(self, source: Source) -> MappedSource:
        """A table source's rows mapped onto the contract (every name checked against the real columns)."""
        if source.table is None:
            raise ValueError(f"{source.name} is a file source: use map_file")
        fqn = source.table.qualified(self.database, self.schema)
        frame = read_table(self.session, fqn, f"sources.yml: {source.name}.table")
        return map_frame(self.session, source, frame, self.database, self.schema)

    def stage_file(self, names: list[str], columns: dict[str, list[Any]]) -> tuple[str, dict[str, str]]:
        """A file's columns as text in a temporary table of this session; (table, original -> staged name)."""
        staged = sanitized_names(names)
        table = validate_identifier(f"SOURCE_FILE_STAGE_{uuid.uuid4().hex[:12].upper()}", "table name")
        self.session.sql(
            f"CREATE TEMPORARY TABLE {table} ({', '.join(f'{c} VARCHAR' for c in staged)}, {FILE_ROW} NUMBER(38,0))"
        ).collect()
        frame = pd.DataFrame(
            {new: [to_text(v) for v in columns[old]] for old, new in zip(names, staged, strict=True)},
            dtype=object,
        )
        frame[FILE_ROW] = range(1, len(frame) + 1)
        if len(frame):
            append_pandas(self.session, table, frame)
        return table, dict(zip(names, staged, strict=True))

    def mapped_file(
        self, source: Source, names: list[str], columns: dict[str, list[Any]]
    ) -> tuple[MappedSource, str]:
        """A file's rows staged (temporary table) and mapped in the warehouse; (mapped, staged table).

        The mapped frame keeps FILE_ROW__ (the position in the file). Drop the staged table with
        ``drop_staged`` when done (it also goes with the session).
        """
        if not names:
            raise SourceDeclarationError(
                f"sources.yml: {source.name}: the file {source.where} has no column."
            )
        table, aliases = self.stage_file(names, columns)
        try:
            # the staged columns under the file's own names: the declaration names those
            renamed = self.session.table(table).select(
                *[F.col(staged).alias(_quoted_alias(original)) for original, staged in aliases.items()],
                F.col(FILE_ROW),
            )
            return map_frame(
                self.session, source, renamed, self.database, self.schema, keep=(FILE_ROW,)
            ), table
        except BaseException:
            self.drop_staged(table)
            raise

    def drop_staged(self, table: str) -> None:
        self.session.sql(f"DROP TABLE IF EXISTS {validate_identifier(table, 'table name')}").collect()

    def map_file(self, source: Source, names: list[str], columns: dict[str, list[Any]]) -> pd.DataFrame:
        """A file's rows mapped onto the contract (in the warehouse, so lookups work), as pandas text, in file order."""
        mapped, table = self.mapped_file(source, names, columns)
        try:
            rows = mapped.frame.sort(F.col(FILE_ROW)).select(*RAW_EVENT_COLUMNS).to_pandas()
        finally:
            self.drop_staged(table)
        rows = rows.astype(object).where(rows.notna(), None)
        return rows[list(RAW_EVENT_COLUMNS)]

    def watermark(self, source: Source) -> Any:
        """The source's current watermark (None: never pulled, or its table / incremental_by changed)."""
        if source.incremental_by is None or source.table is None:
            return None
        if not table_columns(self.session, self.database, self.schema, self.state_table):
            return None
        rows = self.session.sql(
            f"SELECT WATERMARK, WATERMARK_TYPE FROM {self._fqn(self.state_table)} "
            "WHERE SOURCE_NAME = ? AND SOURCE_TABLE = ? AND INCREMENTAL_BY = ? ORDER BY PULL_NO DESC LIMIT 1",
            params=[
                source.name,
                source.table.qualified(self.database, self.schema),
                source.incremental_by.upper(),
            ],
        ).collect()
        return decode_watermark(rows[0][0], rows[0][1]) if rows else None

    def landed_event_ids(self, source: Source) -> DataFrame:
        """EVENT_IDs this source has landed in RAW_DATA (one column, LANDED_EVENT_ID__)."""
        if "SOURCE_FILE" not in table_columns(self.session, self.database, self.schema, self.raw_table):
            return self.session.sql("SELECT CAST(NULL AS VARCHAR) AS LANDED_EVENT_ID__ WHERE 1 = 0")
        raw = self.session.table(self._fqn(self.raw_table))
        return raw.filter(F.col("SOURCE_FILE") == F.lit(source.source_file)).select(
            F.col("EVENT_ID").alias("LANDED_EVENT_ID__")
        )


#: The staged file's row number (its position in the file), passed through the mapping.
FILE_ROW = "FILE_ROW__"


def _quoted_alias(name: str) -> str:
    """A Snowpark alias that keeps a file's original column name (any characters) as the column name."""
    return '"' + str(name).replace('"', '""') + '"'


class SourceReaderDataset(SnowparkTableDataset):
    """Loads a :class:`SourceReader` for the run's session (``table_name``: RAW_DATA; ``state_table``)."""

    def __init__(self, *, state_table: str = "SOURCE_STATE", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state_table = validate_identifier(state_table, "table name (state_table)")

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "state_table": self._fqn(self._state_table)}

    def load(self) -> SourceReader:
        return SourceReader(self.session, self._database, self._schema, self._table_name, self._state_table)

    def save(self, data: Any) -> None:
        raise DatasetError(
            f"{self.fqn} is read through the source reader; sources land through source_pulls."
        )


class SourcePullDataset(EventFileLoadDataset):
    """Lands :class:`SourcePull` objects in the raw table (see the module docstring); loads their reports."""

    def __init__(self, *, state_table: str = "SOURCE_STATE", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._state_table = validate_identifier(state_table, "table name (state_table)")
        self._last_reports: list[dict[str, Any]] | None = None

    @property
    def state_fqn(self) -> str:
        return self._fqn(self._state_table)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "state_table": self.state_fqn}

    def load(self) -> list[dict[str, Any]]:  # type: ignore[override]
        if self._last_reports is None:
            raise DatasetError("No source was pulled by this run yet: the reports exist only after a save.")
        return [dict(r) for r in self._last_reports]

    def save(self, data: Any) -> None:  # type: ignore[override]
        pulls = list(data or [])
        if not all(isinstance(p, SourcePull) for p in pulls):
            raise DatasetError(
                f"{self.fqn} (source pulls) saves a list of SourcePull, not {type(data).__name__}."
            )
        self._check_session_schema()
        reports = []
        for pull in pulls:
            if pull.file_load is not None:
                self._last_report = None
                report = self._append_once(self.session, pull.file_load)
                info = {k: v for k, v in pull.info.items() if k != "demo_derived_tables"}
                reports.append({"source": pull.source.name, **info, **report})
            else:
                reports.append(self._land(pull))
        self._last_reports = reports

    def _check_session_schema(self) -> None:
        from customer_segmentation import warehouse

        settings = warehouse.current_settings()
        if (self._database, self._schema) != (settings.database, settings.schema):
            raise DatasetError(
                f"{self.fqn} is not in the session's database and schema ({settings.database}.{settings.schema}): "
                "remove database/schema from this catalog entry or set SNOWFLAKE_DATABASE/SNOWFLAKE_SCHEMA."
            )

    def _report(self, pull: SourcePull, status: str, **extra: Any) -> dict[str, Any]:
        source = pull.source
        return {
            "source": source.name,
            "table": source.table.qualified(self._database, self._schema) if source.table else None,
            "incremental_by": source.incremental_by,
            "status": status,
            "rows_read": pull.rows_read,
            "rows_landed": 0,
            "watermark_from": None
            if pull.watermark_from is None
            else encode_watermark(pull.watermark_from)[0],
            "watermark_to": None if pull.watermark_to is None else encode_watermark(pull.watermark_to)[0],
            **{k: v for k, v in pull.info.items() if k != "demo_derived_tables"},
            **extra,
        }

    def _ensure_state_table(self, session: Any) -> None:
        session.sql(
            create_table_sql(self._database, self._schema, self._state_table, SOURCE_STATE_COLUMNS)
        ).collect()

    def _remove_unfinished(self, session: Any, source_file: str) -> None:
        """Rows and history of an earlier pull of this source that never committed its 'loaded' mark."""
        stale = session.sql(
            f"SELECT LOADED_AT FROM {self.history_fqn} WHERE SOURCE_FILE = ? AND RAW_TABLE = ? AND STATUS = 'loading'",
            params=[source_file, self.fqn],
        ).collect()
        for (loaded_at,) in stale:
            logger.warning(
                "An earlier pull of %s (LOADED_AT %s) stopped before it committed: its rows were never "
                "kept; reading them again now",
                source_file,
                loaded_at,
            )
            # rows first (none are expected: they are written in the transaction that marks the load)
            session.sql(
                f"DELETE FROM {self.fqn} WHERE SOURCE_FILE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
                params=[source_file, str(loaded_at)],
            ).collect()
            session.sql(
                f"DELETE FROM {self.history_fqn} WHERE SOURCE_FILE = ? AND RAW_TABLE = ? AND STATUS = 'loading' "
                "AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
                params=[source_file, self.fqn, str(loaded_at)],
            ).collect()

    def _write_state(self, session: Any, pull: SourcePull, landed: int, loaded_at: Any, run_id: str) -> None:
        source = pull.source
        assert source.table is not None and source.incremental_by is not None
        text, kind = encode_watermark(pull.watermark_to)
        table = source.table.qualified(self._database, self._schema)
        session.sql(
            f"INSERT INTO {self.state_fqn} (SOURCE_NAME, SOURCE_TABLE, INCREMENTAL_BY, PULL_NO, WATERMARK, "
            "WATERMARK_TYPE, ROWS_READ, ROWS_LANDED, LOADED_AT, RUN_ID, UPDATED_AT) "
            "SELECT ?, ?, ?, COALESCE(MAX(PULL_NO), 0) + 1, ?, ?, ?, ?, CAST(? AS TIMESTAMP_NTZ), ?, "
            f"CAST(? AS TIMESTAMP_NTZ) FROM {self.state_fqn} WHERE SOURCE_NAME = ?",
            params=[
                source.name,
                table,
                source.incremental_by.upper(),
                text,
                kind,
                pull.rows_read,
                landed,
                None if loaded_at is None else str(loaded_at),
                run_id,
                _now_utc().isoformat(sep=" "),
                source.name,
            ],
        ).collect()

    def _land(self, pull: SourcePull) -> dict[str, Any]:
        session, source = self.session, pull.source
        run_id = str(pull.info.get("run_id") or "")
        if pull.skipped:
            return self._report(pull, "skipped", reason=pull.skipped)
        moves = (
            source.incremental_by is not None
            and pull.watermark_to is not None
            and (pull.watermark_from is None or pull.watermark_to != pull.watermark_from)
        )
        if pull.rows_new == 0:
            if moves:  # rows read, all landed before (e.g. after a state reset): only the watermark moves
                self._ensure_state_table(session)
                with transaction(session):
                    self._write_state(session, pull, 0, None, run_id)
            return self._report(pull, "up_to_date")
        assert pull.frame is not None
        # demo and user rows never mix: a first real load removes the demo (DDL, before any transaction)
        remove_demo_before_first_load(
            session, self._database, self._schema, self._table_name, pull.info.get("demo_derived_tables")
        )
        self.ensure_tables(session)
        self._ensure_state_table(session)
        self._remove_unfinished(session, source.source_file)
        identity = "|".join(
            str(x)
            for x in (
                source.source_file,
                source.where,
                pull.watermark_from,
                pull.watermark_to,
                run_id,
                uuid.uuid4().hex,
            )
        )
        file_info = {
            "source_file": source.source_file,
            "format": "table",
            "file_sha256": hashlib.sha256(identity.encode()).hexdigest(),
        }
        loaded_at = self.register_load(session, file_info, pull.rows_new, run_id)
        rows = numbered(pull.frame, source.incremental_by is not None).select(
            *RAW_EVENT_COLUMNS,
            F.lit(loaded_at.isoformat(sep=" ")).cast("timestamp_ntz").alias("LOADED_AT"),
            F.lit(source.source_file).alias("SOURCE_FILE"),
            F.col("SOURCE_ROW"),
        )
        with transaction(session):
            rows.write.save_as_table(self.fqn, mode="append", column_order="name")
            landed = int(
                session.sql(
                    f"SELECT COUNT(*) FROM {self.fqn} WHERE SOURCE_FILE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
                    params=[source.source_file, str(loaded_at)],
                ).collect()[0][0]
            )
            session.sql(
                f"UPDATE {self.history_fqn} SET ROW_COUNT = ? WHERE FILE_SHA256 = ? AND RAW_TABLE = ?",
                params=[landed, file_info["file_sha256"], self.fqn],
            ).collect()
            if source.incremental_by is not None and pull.watermark_to is not None:
                self._write_state(session, pull, landed, loaded_at, run_id)
            self.mark_loaded(session, file_info["file_sha256"], loaded_at)
        logger.info(
            "Source %s (%s): read %s rows%s, landed %s new events in %s (LOADED_AT %s)",
            source.name,
            source.where,
            f"{pull.rows_read:,}",
            ""
            if pull.watermark_from is None
            else f" from {source.incremental_by} >= {encode_watermark(pull.watermark_from)[0]}",
            f"{landed:,}",
            self.fqn,
            loaded_at,
        )
        return self._report(pull, "landed", rows_landed=landed, loaded_at=loaded_at.isoformat(sep=" "))


def pending_rows(
    reader: SourceReader, mapped: MappedSource, watermark: Any
) -> tuple[DataFrame, DataFrame, Any]:
    """(rows in the watermark range, those not landed yet, the range's high end) of a table source.

    The range ends at ``high``, the largest value present now: a fixed range, so a row arriving
    while the pull runs waits for the next one. It starts after the watermark for a numeric
    ``incremental_by`` (an id from a sequence never repeats), and *at* it for a timestamp, date or
    text, whose value several rows may share: rows at the old watermark are read again (more may
    have arrived with that same value since) and those landed already are dropped by the
    anti-join on the event ids this source has landed. A source without ``incremental_by`` is read
    whole, and only its new event ids land.
    """
    frame = mapped.frame
    high = None
    if mapped.incremental:
        if watermark is not None:
            after = F.col(INCREMENTAL) > watermark_literal(watermark)
            at_or_after = F.col(INCREMENTAL) >= watermark_literal(watermark)
            frame = frame.filter(after if mapped.incremental_kind in ("number", "float") else at_or_after)
        else:
            frame = frame.filter(F.col(INCREMENTAL).is_not_null())
        high = frame.agg(F.max(F.col(INCREMENTAL)).alias("H")).collect()[0][0]
        if high is not None:
            frame = frame.filter(F.col(INCREMENTAL) <= watermark_literal(high))
    landed = reader.landed_event_ids(mapped.source)
    new = frame.join(landed, frame["EVENT_ID"] == landed["LANDED_EVENT_ID__"], how="leftanti")
    return frame, new, high
