"""Table contracts: the RAW_DATA columns users provide, and DDL for the tables the project owns."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier

logger = logging.getLogger(__name__)

#: The RAW_DATA contract: one row per customer event (documented in the README).
RAW_EVENT_COLUMNS: dict[str, str] = {
    "EVENT_ID": "VARCHAR",
    "EVENT_TYPE": "VARCHAR",
    "EVENT_TS": "VARCHAR",
    "CUSTOMER_ID": "VARCHAR",
    "ORDER_ID": "VARCHAR",
    "PRODUCT_ID": "VARCHAR",
    "CATEGORY": "VARCHAR",
    "QUANTITY": "VARCHAR",
    "AMOUNT": "VARCHAR",
    "CHANNEL": "VARCHAR",
}
#: Load stamps: optional in a user's own RAW_DATA, always written by ``load_events`` and the demo seed.
RAW_LOAD_COLUMNS: dict[str, str] = {
    "LOADED_AT": "TIMESTAMP_NTZ",
    "SOURCE_FILE": "VARCHAR",
    "SOURCE_ROW": "NUMBER(38,0)",
}
RAW_COLUMNS: dict[str, str] = {**RAW_EVENT_COLUMNS, **RAW_LOAD_COLUMNS}


def create_table_sql(database: str, schema: str, table: str, columns: dict[str, str]) -> str:
    """``CREATE TABLE IF NOT EXISTS`` for validated names and a fixed column map."""
    cols = ", ".join(f"{name} {sql_type}" for name, sql_type in columns.items())
    return f"CREATE TABLE IF NOT EXISTS {qualified_name(database, schema, table)} ({cols})"


def table_exists(session: Any, database: str, schema: str, table: str) -> bool:
    """True when the table exists (information_schema look-up, no data read)."""
    db = validate_identifier(database, "database name")
    rows = session.sql(
        f"SELECT COUNT(*) AS N FROM {db}.INFORMATION_SCHEMA.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
        params=[schema.upper(), table.upper()],
    ).collect()
    return bool(rows and rows[0][0])


#: Per session: (DATABASE, SCHEMA, TABLE) -> column names, for tables known to exist. Each
#: INFORMATION_SCHEMA query is a metadata round trip on Snowflake (seconds on big accounts), and
#: a run asks about the same few tables again and again; columns only change when the run itself
#: replaces a table, and every writer through the datasets refreshes the entry. A new session
#: (a new run) starts empty. Missing tables are never cached: another step may create them.
_COLUMN_CACHE: weakref.WeakKeyDictionary[Any, dict[tuple[str, str, str], list[str]]] = (
    weakref.WeakKeyDictionary()
)
_CACHE_LOCK = threading.Lock()


def _cache_key(database: str, schema: str, table: str) -> tuple[str, str, str]:
    return (database.upper(), schema.upper(), table.upper())


def _session_cache(session: Any) -> dict[tuple[str, str, str], list[str]]:
    with _CACHE_LOCK:
        try:
            return _COLUMN_CACHE.setdefault(session, {})
        except TypeError:  # an object that cannot be weakly referenced (a test double): no cache
            return {}


def table_columns(session: Any, database: str, schema: str, table: str) -> list[str]:
    """Column names of a table, upper-case, in order (empty when the table does not exist).

    Cached per session for existing tables (see ``_COLUMN_CACHE``); ``remember_table_columns``
    and ``forget_table_columns`` keep the cache right when the run writes or drops a table.
    """
    db = validate_identifier(database, "database name")
    cache = _session_cache(session)
    key = _cache_key(db, schema, table)
    if key in cache:
        return list(cache[key])
    rows = session.sql(
        f"SELECT COLUMN_NAME FROM {db}.INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        params=[schema.upper(), table.upper()],
    ).collect()
    columns = [str(r[0]).upper() for r in rows]
    if columns:
        cache[key] = columns
    return list(columns)


def remember_table_columns(
    session: Any, database: str, schema: str, table: str, columns: Sequence[str]
) -> None:
    """Record the columns of a table this session has just (re)created."""
    _session_cache(session)[_cache_key(database, schema, table)] = [
        str(c).strip('"').upper() for c in columns
    ]


def forget_table_columns(
    session: Any, database: str | None = None, schema: str | None = None, table: str | None = None
) -> None:
    """Drop cached columns of one table (or of every table when ``table`` is None), e.g. after DDL."""
    cache = _session_cache(session)
    if table is None:
        cache.clear()
        return
    cache.pop(_cache_key(str(database), str(schema), table), None)


def append_pandas(session: Any, table: str, frame: Any) -> None:
    """Bulk-append a pandas frame to an existing table in the session's database and schema.

    ``write_pandas`` (stage + COPY, not row-by-row inserts). No database/schema arguments: the
    session already points there, and the embedded warehouse cannot resolve a qualified temporary
    stage.
    """
    session.write_pandas(frame, table, auto_create_table=False, overwrite=False, use_logical_type=True)


@contextmanager
def transaction(session: Any) -> Iterator[None]:
    """Run the enclosed DML statements as one Snowflake transaction (all or nothing).

    Snowflake: an explicit transaction should hold only DML and queries; a DDL statement
    (CREATE TABLE, ALTER ...) commits the open transaction implicitly, so create tables before
    entering (docs.snowflake.com/en/sql-reference/transactions). On any error, and on a crash of
    the client (the session ends without COMMIT), nothing of the block is applied.
    """
    session.sql("BEGIN TRANSACTION").collect()
    try:
        yield
    except BaseException:
        try:
            session.sql("ROLLBACK").collect()
        except Exception:  # pragma: no cover - the original error matters more
            logger.warning("ROLLBACK failed after an error in a transaction", exc_info=True)
        raise
    session.sql("COMMIT").collect()


def sql_type_of(series: Any) -> str:
    """The Snowflake column type for a pandas column (fixed types, so reruns keep the same DDL)."""
    from datetime import date

    import pandas as pd  # only when a pandas frame is written: this module stays light to import

    if pd.api.types.is_bool_dtype(series):
        return "BOOLEAN"
    if pd.api.types.is_integer_dtype(series):
        return "NUMBER(38,0)"
    if pd.api.types.is_float_dtype(series):
        return "DOUBLE"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "TIMESTAMP_NTZ"
    non_null = series.dropna()
    if len(non_null) and all(isinstance(v, date) and not isinstance(v, pd.Timestamp) for v in non_null):
        return "DATE"
    return "VARCHAR"
