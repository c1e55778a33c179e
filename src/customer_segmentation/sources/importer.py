"""`kedro warehouse import FILE --table SCHEMA.TABLE`: put your own table into the warehouse.

Meant for trying the project on your data without an account (the embedded warehouse), and it
runs the same statements on Snowflake: ``CREATE SCHEMA IF NOT EXISTS``, an explicit ``CREATE
TABLE`` with typed columns (inferred from the file), then ``write_pandas`` into the table from a
session whose current schema is the target's. Snowpark's ``create_dataframe(pandas)`` and
``write_pandas(auto_create_table=True)`` are not used: the emulator supports neither (its PUT has
no ``command`` and ``INFER_SCHEMA`` is not emulated), and an explicit CREATE TABLE keeps the types
the same on both engines.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from customer_segmentation.errors import SegmentationError
from customer_segmentation.sources.declarations import TableRef
from customer_segmentation.sources.files import (
    FileOptions,
    FileReadError,
    read_columns,
    sanitized_names,
    to_text,
)
from customer_segmentation.warehouse.identifiers import qualified_name
from customer_segmentation.warehouse.tables import table_columns

logger = logging.getLogger(__name__)

_INTEGER = re.compile(r"^[+-]?\d{1,18}$")
_DECIMAL = re.compile(r"^[+-]?\d{1,24}\.(\d{1,9})$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_TIMESTAMP = re.compile(r"^\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?$")
FORMATS = {".csv": "csv", ".tsv": "csv", ".txt": "csv", ".gz": "csv", ".parquet": "parquet", ".pq": "parquet"}
FORMATS.update({".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".xlsx": "xlsx"})


class SourceImportError(SegmentationError, ValueError):
    """The file cannot be imported as asked (nothing was created or written)."""


@dataclass(frozen=True)
class ImportResult:
    table: str
    rows: int
    columns: dict[str, str]  # column -> SQL type
    renamed: dict[str, str]  # file column -> table column, where they differ
    created: bool


def _typed(values: list[str | None]) -> tuple[str, list[Any]]:
    """The SQL type of a column of text values, and the values converted for write_pandas."""
    present = [v.strip() for v in values if v is not None and v.strip() != ""]
    if not present:
        return "VARCHAR", values
    if all(_INTEGER.match(v) for v in present) and not any(
        len(v.lstrip("+-")) > 1 and v.lstrip("+-").startswith("0") for v in present
    ):  # leading zeros: an id, kept as text
        return "NUMBER(38,0)", [None if v is None or not v.strip() else int(v) for v in values]
    decimals = [m for v in present if (m := _DECIMAL.match(v))]
    if decimals and all(_INTEGER.match(v) or _DECIMAL.match(v) for v in present):
        scale = max(len(m.group(1)) for m in decimals)
        return f"NUMBER(38,{scale})", [None if v is None or not v.strip() else float(v) for v in values]
    if all(_DATE.match(v) for v in present):
        try:
            return "DATE", [
                None if v is None or not v.strip() else date.fromisoformat(v.strip()) for v in values
            ]
        except ValueError:
            return "VARCHAR", values
    if all(_TIMESTAMP.match(v) for v in present):
        try:
            parsed = [
                None if v is None or not v.strip() else datetime.fromisoformat(v.strip()) for v in values
            ]
        except ValueError:
            return "VARCHAR", values
        return "TIMESTAMP_NTZ", parsed
    return "VARCHAR", values


def file_format(path: Path, requested: str | None) -> str:
    if requested:
        return {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(requested.lower(), requested.lower())
    for ending, fmt in FORMATS.items():
        if path.name.lower().endswith(ending):
            return fmt
    raise SourceImportError(
        f"Cannot tell the format of {path.name!r}: use .csv, .jsonl, .parquet or .xlsx, or --format."
    )


def read_for_import(
    path: Path, fmt: str, options: FileOptions
) -> tuple[pd.DataFrame, dict[str, str], dict[str, str]]:
    """(frame with typed columns under plain names, column -> SQL type, file column -> table column)."""
    try:
        names, columns = read_columns(path, fmt, options)
    except FileReadError as exc:
        raise SourceImportError(str(exc)) from None
    except Exception as exc:  # every parser raises its own kind
        raise SourceImportError(
            f"Could not read {path.name!r} as {fmt}: {type(exc).__name__}: {exc}"
        ) from None
    if not names:
        raise SourceImportError(f"{path.name!r} has no column: nothing to import.")
    plain = sanitized_names(names)
    data: dict[str, list[Any]] = {}
    types: dict[str, str] = {}
    for name, column in zip(names, plain, strict=True):
        types[column], data[column] = _typed([to_text(v) for v in columns[name]])
    frame = pd.DataFrame({c: pd.Series(v, dtype=_dtype(types[c])) for c, v in data.items()})
    renamed = {n: p for n, p in zip(names, plain, strict=True) if str(n).strip().upper() != p}
    return frame, types, renamed


def _dtype(sql_type: str) -> str:
    if sql_type == "NUMBER(38,0)":
        return "Int64"
    if sql_type.startswith("NUMBER("):
        return "float64"
    if sql_type == "TIMESTAMP_NTZ":
        return "datetime64[us]"
    return "object"


def import_file(
    session: Any,
    path: Path,
    table: str,
    database: str,
    schema: str,
    *,
    options: FileOptions | None = None,
    fmt: str | None = None,
    mode: str = "create",
    embedded: bool = True,
) -> ImportResult:
    """Create ``table`` (SCHEMA.TABLE or DATABASE.SCHEMA.TABLE) with typed columns and load the file into it.

    ``mode``: ``create`` refuses an existing table, ``replace`` drops and re-creates it,
    ``append`` adds the rows to an existing table with the same columns.
    """
    if mode not in ("create", "replace", "append"):
        raise SourceImportError(f"mode must be create, replace or append, not {mode!r}")
    path = Path(path).expanduser()
    if not path.is_file():
        raise SourceImportError(f"File {str(path)!r} does not exist.")
    ref = TableRef.parse(table, "--table")
    target_db, target_schema = ref.database or database, ref.schema or schema
    fqn = qualified_name(target_db, target_schema, ref.table)
    frame, types, renamed = read_for_import(
        path, file_format(path, fmt), options or FileOptions(setting="--{option} ...")
    )
    existing = (
        table_columns(session, target_db, target_schema, ref.table)
        if _database_exists(session, target_db)
        else []
    )
    if existing and mode == "create":
        raise SourceImportError(
            f"Table {fqn} already exists (columns {', '.join(existing)}). Use --replace to drop and re-create it, "
            "or --append to add these rows to it."
        )
    if not existing and mode == "append":
        raise SourceImportError(f"Table {fqn} does not exist: import without --append to create it.")
    if existing and mode == "append" and existing != list(frame.columns):
        raise SourceImportError(
            f"Table {fqn} has columns {', '.join(existing)}; the file gives {', '.join(frame.columns)}. "
            "Use --replace, or a file with the same columns."
        )
    # DDL first, each statement on its own (never inside a transaction: on Snowflake DDL commits it).
    # CREATE SCHEMA makes the new schema the session's current one on the embedded warehouse (tested),
    # and Snowflake's CREATE SCHEMA usage notes say the same (not checked on a live account): the
    # session's schema is restored after, whatever happens.
    current = session.sql("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()").collect()[0]
    try:
        return _create_and_load(
            session, path, ref, fqn, frame, types, renamed, existing, mode, embedded, database, target_schema
        )
    finally:
        session.use_schema(f"{current[0]}.{current[1]}")


def _create_and_load(  # noqa: PLR0913
    session: Any,
    path: Path,
    ref: TableRef,
    fqn: str,
    frame: pd.DataFrame,
    types: dict[str, str],
    renamed: dict[str, str],
    existing: list[str],
    mode: str,
    embedded: bool,
    database: str,
    target_schema: str,
) -> ImportResult:
    target_db = ref.database or database
    if ref.database is not None and ref.database != database:
        if not embedded and not _database_exists(session, target_db):
            raise SourceImportError(
                f"Database {target_db} does not exist on Snowflake (or the role may not use it): create it first."
            )
        if embedded:
            session.sql(f"CREATE DATABASE IF NOT EXISTS {target_db}").collect()
    session.sql(f"CREATE SCHEMA IF NOT EXISTS {target_db}.{target_schema}").collect()
    if existing and mode == "replace":
        session.sql(f"DROP TABLE IF EXISTS {fqn}").collect()
    created = not existing or mode == "replace"
    if created:
        columns_sql = ", ".join(f"{c} {t}" for c, t in types.items())
        session.sql(f"CREATE TABLE {fqn} ({columns_sql})").collect()
    if len(frame):
        _write_in_schema(session, frame, target_db, target_schema, ref.table)
    from customer_segmentation.warehouse.tables import forget_table_columns

    forget_table_columns(session, target_db, target_schema, ref.table)
    logger.info("Imported %s rows from %s into %s", len(frame), path, fqn)
    return ImportResult(fqn, len(frame), types, renamed, created)


def _database_exists(session: Any, database: str) -> bool:
    try:
        session.sql(f"SELECT 1 FROM {database}.INFORMATION_SCHEMA.SCHEMATA LIMIT 1").collect()
        return True
    except Exception:  # noqa: BLE001 - "does not exist or not authorized"
        return False


def _write_in_schema(session: Any, frame: pd.DataFrame, database: str, schema: str, table: str) -> None:
    """write_pandas into DATABASE.SCHEMA.TABLE from a session whose current schema is that one.

    (The emulator cannot write to a qualified table from another schema: its stage upload fails.)
    The caller restores the session's schema.
    """
    session.use_schema(f"{database}.{schema}")
    session.write_pandas(frame, table, auto_create_table=False, overwrite=False, use_logical_type=True)
