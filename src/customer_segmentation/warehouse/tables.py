"""Table contracts: the RAW_DATA columns users provide, and DDL for the tables the project owns."""

from __future__ import annotations

import logging
from collections.abc import Iterator
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


def table_columns(session: Any, database: str, schema: str, table: str) -> list[str]:
    """Column names of a table, upper-case, in order (empty when the table does not exist)."""
    db = validate_identifier(database, "database name")
    rows = session.sql(
        f"SELECT COLUMN_NAME FROM {db}.INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        params=[schema.upper(), table.upper()],
    ).collect()
    return [str(r[0]).upper() for r in rows]


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
