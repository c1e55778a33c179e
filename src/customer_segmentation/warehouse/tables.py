"""Table contracts: the RAW_DATA columns users provide, and DDL for the tables the project owns."""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from customer_segmentation.errors import TransactionStateError
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


@dataclass
class _KnownColumns:
    """What one session knows of its tables' columns (see ``table_columns``)."""

    #: (DATABASE, SCHEMA, TABLE) -> column names, for tables known to exist. Each INFORMATION_SCHEMA
    #: query is a metadata round trip on Snowflake (seconds on big accounts), and a run asks about
    #: the same few tables again and again; columns only change when the run itself replaces a
    #: table, and every writer through the datasets refreshes the entry. Missing tables are never
    #: cached: another step may create them.
    tables: dict[tuple[str, str, str], list[str]] = field(default_factory=dict)
    #: The (DATABASE, SCHEMA) pairs whose tables were all listed in one query.
    listed: set[tuple[str, str]] = field(default_factory=set)


#: Per session (a new session, a new run, starts empty).
_KNOWN: weakref.WeakKeyDictionary[Any, _KnownColumns] = weakref.WeakKeyDictionary()
_CACHE_LOCK = threading.Lock()


def _cache_key(database: str, schema: str, table: str) -> tuple[str, str, str]:
    return (database.upper(), schema.upper(), table.upper())


def _known(session: Any) -> _KnownColumns | None:
    with _CACHE_LOCK:
        try:
            return _KNOWN.setdefault(session, _KnownColumns())
        except TypeError:  # an object that cannot be weakly referenced (a test double): no cache
            return None


def table_columns(session: Any, database: str, schema: str, table: str) -> list[str]:
    """Column names of a table, upper-case, in order (empty when the table does not exist).

    Cached per session for existing tables (see ``_KnownColumns``); ``remember_table_columns``
    and ``forget_table_columns`` keep the cache right when the run writes or drops a table.
    The first look-up in a schema lists the columns of all its tables in one INFORMATION_SCHEMA
    query (a run reads a dozen tables of the same schema: 23 single-table queries in a ``daily``
    run became one); later look-ups of a table that was missing then ask again.
    """
    db = validate_identifier(database, "database name")
    known = _known(session)
    key = _cache_key(db, schema, table)
    if known is not None:
        if key in known.tables:
            return list(known.tables[key])
        where = (db.upper(), schema.upper())
        if where not in known.listed:
            _list_schema(session, db, schema, known.tables)
            known.listed.add(where)
            return list(known.tables.get(key, []))
    rows = session.sql(
        f"SELECT COLUMN_NAME FROM {db}.INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ? ORDER BY ORDINAL_POSITION",
        params=[schema.upper(), table.upper()],
    ).collect()
    columns = [str(r[0]).upper() for r in rows]
    if columns and known is not None:
        known.tables[key] = columns
    return list(columns)


def _list_schema(session: Any, db: str, schema: str, cache: dict[tuple[str, str, str], list[str]]) -> None:
    """Cache the columns of every table of ``db.schema`` (one query); entries the run wrote are kept.

    Only tables whose stored name is upper-case are cached, as a single-table look-up (which asks
    for ``TABLE_NAME = <upper-case name>``) finds only those.
    """
    rows = session.sql(
        f"SELECT TABLE_NAME, COLUMN_NAME FROM {db}.INFORMATION_SCHEMA.COLUMNS "
        "WHERE TABLE_SCHEMA = ? ORDER BY TABLE_NAME, ORDINAL_POSITION",
        params=[schema.upper()],
    ).collect()
    found: dict[tuple[str, str, str], list[str]] = {}
    for name, column in rows:
        if str(name) == str(name).upper():
            found.setdefault(_cache_key(db, schema, str(name)), []).append(str(column).upper())
    for key, columns in found.items():
        cache.setdefault(key, columns)


def remember_table_columns(
    session: Any, database: str, schema: str, table: str, columns: Sequence[str]
) -> None:
    """Record the columns of a table this session has just (re)created."""
    known = _known(session)
    if known is not None:
        known.tables[_cache_key(database, schema, table)] = [str(c).strip('"').upper() for c in columns]


def forget_table_columns(
    session: Any, database: str | None = None, schema: str | None = None, table: str | None = None
) -> None:
    """Drop cached columns of one table (or of every table when ``table`` is None), e.g. after DDL."""
    known = _known(session)
    if known is None:
        return
    if table is None:
        known.tables.clear()
        known.listed.clear()
        return
    known.tables.pop(_cache_key(str(database), str(schema), table), None)


def append_pandas(
    session: Any, table: str, frame: Any, database: str | None = None, schema: str | None = None
) -> None:
    """Bulk-append a pandas frame to an existing table (``database.schema.table``; default: the session's).

    ``write_pandas`` (stage + COPY, not row-by-row inserts); its temporary stage is created next to
    the table, where the dataset may create objects. Identifiers are passed unquoted
    (``quote_identifiers=False``): the names are validated plain identifiers, which Snowflake
    resolves upper-case, and the embedded warehouse resolves an unquoted qualified stage but not a
    quoted one. DDL (CREATE STAGE): never call it inside a transaction.
    """
    session.write_pandas(
        frame,
        validate_identifier(table, "table name"),
        database=validate_identifier(database, "database name") if database else None,
        schema=validate_identifier(schema, "schema name") if schema else None,
        auto_create_table=False,
        overwrite=False,
        use_logical_type=True,
        quote_identifiers=False,
    )


#: A pandas frame of at most this many values is written by one INSERT of bound values
#: (:func:`insert_values`) rather than staged: ~0.4 KB to 40 KB of statement text, far below the 1 MB
#: Snowflake recommends for a statement and its bound values
#: (https://docs.snowflake.com/user-guide/query-size-limits).
MAX_BOUND_VALUES = 2_000


def _bindable(series: Any, sql_type: str) -> list[Any] | None:
    """The column's values as Python values a driver binds faithfully to ``sql_type``, or None.

    NULLs (None, NaN, NaT, pd.NA) become None, as the staged path writes them; a value of a
    kind the binding could change (an infinity, a time zone, a non-text object in a text column)
    gives None, and the frame is staged instead.
    """
    import math
    from datetime import date, datetime

    import pandas as pd

    values: list[Any] = []
    for value in series.tolist():
        if (
            value is None
            or value is pd.NaT
            or value is pd.NA
            or (isinstance(value, float) and math.isnan(value))
        ):
            values.append(None)
        elif sql_type == "BOOLEAN":
            values.append(bool(value))
        elif sql_type == "NUMBER(38,0)":
            values.append(int(value))
        elif sql_type == "DOUBLE":
            if not math.isfinite(float(value)):  # infinities: as the staged file carries them
                return None
            values.append(float(value))
        elif sql_type == "TIMESTAMP_NTZ":
            if not isinstance(value, datetime) or value.tzinfo is not None:
                return None
            values.append(value.to_pydatetime() if isinstance(value, pd.Timestamp) else value)
        elif sql_type == "DATE":
            if not isinstance(value, date) or isinstance(value, datetime):
                return None
            values.append(value)
        elif isinstance(value, str):
            values.append(value)
        else:
            return None
    return values


def insert_values(session: Any, table: str, frame: Any, types: Sequence[str]) -> bool:
    """Append a small pandas frame to ``table`` with one INSERT of bound values; False if not done.

    For the few rows monitoring writes (profiles, drift, flows: 1-40 rows), staging costs three
    statements and a file (CREATE STAGE, PUT, COPY: ~60 ms per write in the embedded warehouse);
    this is one statement. ``types`` are the table's column types (:func:`sql_type_of`). Returns
    False, writing nothing, when the frame is empty, has more than :data:`MAX_BOUND_VALUES`
    values, or holds a value that is not bound as is (then stage it: :func:`append_pandas`).
    User values reach the SQL as bound values only; the column names are validated identifiers.
    """
    rows, width = len(frame), len(frame.columns)
    if not rows or rows * width > MAX_BOUND_VALUES:
        return False
    columns = [_bindable(frame.iloc[:, j], types[j]) for j in range(width)]
    if any(c is None for c in columns):
        return False
    names = ", ".join(validate_identifier(str(c), "column name") for c in frame.columns)
    row = "(" + ", ".join("?" * width) + ")"
    params = [columns[j][i] for i in range(rows) for j in range(width)]
    session.sql(f"INSERT INTO {table} ({names}) VALUES {', '.join([row] * rows)}", params=params).collect()
    return True


#: Sessions on which a transaction may be open: BEGIN was sent and neither COMMIT nor ROLLBACK is
#: known to have ended it. On Snowflake any DDL statement commits an open transaction first
#: (https://docs.snowflake.com/en/sql-reference/transactions, "DDL"), so nothing may issue DDL on
#: such a session: not a scratch-table DROP in a ``finally``, not the next dataset.
_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
#: Sessions whose ROLLBACK failed and that were closed instead (their transaction dies with them).
_DISCARDED: weakref.WeakSet[Any] = weakref.WeakSet()


def _tracked(session: Any, registry: weakref.WeakSet[Any]) -> bool:
    try:
        return session in registry
    except TypeError:  # an object that cannot be weakly referenced (a test double)
        return False


def _track(session: Any, registry: weakref.WeakSet[Any], on: bool) -> None:
    try:
        if on:
            registry.add(session)
        else:
            registry.discard(session)
    except TypeError:  # pragma: no cover - test doubles without weak references
        pass


def transaction_may_be_open(session: Any) -> bool:
    """True while ``session`` may hold an open transaction (and when it was discarded for that reason)."""
    return _tracked(session, _OPEN) or _tracked(session, _DISCARDED)


@contextmanager
def _temp_table_cleaner_paused(session: Any) -> Iterator[None]:
    """Snowpark's temp-table auto-cleaner off for the block.

    When enabled (a server-side feature flag), Snowpark drops the temporary tables of garbage-collected
    DataFrames with an asynchronous ``DROP TABLE`` on the same session, at any moment: inside a
    transaction that DDL would commit it. The private attribute is set directly: the public setter
    is experimental and sends telemetry on every call.
    """
    attribute = "_auto_clean_up_temp_table_enabled"
    enabled = getattr(session, attribute, None)
    if enabled is True:
        setattr(session, attribute, False)
    try:
        yield
    finally:
        if enabled is True:
            setattr(session, attribute, True)


def _end_after_error(session: Any) -> None:
    """ROLLBACK after an error in a transaction; if that fails too, end the session instead.

    A session whose ROLLBACK failed (network gone, a second Ctrl-C) may still hold the transaction:
    the next DDL on it would commit the half-written state. It is closed instead (Snowflake rolls
    back the open transaction of a closed session; the embedded warehouse's DuckDB does the same)
    and the process's session is forgotten, so the next step opens a new one.
    """
    try:
        session.sql("ROLLBACK").collect()
    except BaseException:  # noqa: BLE001 - KeyboardInterrupt included: the session must not be reused
        logger.error(
            "ROLLBACK failed after an error in a transaction: closing the warehouse session so that "
            "nothing can commit the unfinished transaction (it is rolled back with the session)",
            exc_info=True,
        )
        _track(session, _DISCARDED, True)
        _track(session, _OPEN, False)
        from customer_segmentation.warehouse.session import discard_session

        discard_session(session)
        return
    _track(session, _OPEN, False)


@contextmanager
def transaction(session: Any) -> Iterator[None]:
    """Run the enclosed DML statements and queries as one transaction: all of them or none.

    The one helper for every write sequence that must be atomic (snapshots, the activation feed,
    aggregates, model versions, evidence). Rules it enforces or relies on:

    - only DML and queries inside: a DDL statement (CREATE, DROP, ALTER, CTAS, ``save_as_table``,
      ``write_pandas``) commits the open transaction on Snowflake (docs.snowflake.com/en/sql-reference/
      transactions), so scratch tables are created before and dropped after, with
      :func:`drop_tables_outside_transaction`;
    - any exception, ``KeyboardInterrupt`` and ``SystemExit`` (SIGTERM) included, rolls back; a
      failing COMMIT is rolled back too (a no-op if it had committed);
    - a ROLLBACK that fails closes the session (see ``_end_after_error``): never a later statement
      on a session whose transaction may still be open;
    - no nesting: Snowflake ignores a second BEGIN, so an inner block's COMMIT would commit the outer
      block's statements half-way; a nested call is refused.

    The session is expected to run with AUTOCOMMIT = TRUE (pinned at session open,
    ``warehouse/session.py``); with AUTOCOMMIT off, earlier statements would have opened an
    implicit transaction that BEGIN joins.
    """
    if transaction_may_be_open(session):
        raise TransactionStateError(
            "A transaction is already open (or was left open by a failed ROLLBACK) on this warehouse session: "
            "transactions cannot be nested. This is a bug in the caller; nothing was written."
        )
    _track(session, _OPEN, True)
    with _temp_table_cleaner_paused(session):
        try:
            session.sql("BEGIN TRANSACTION").collect()
            yield
            session.sql("COMMIT").collect()
        except BaseException:
            _end_after_error(session)
            raise
    _track(session, _OPEN, False)


def drop_tables_outside_transaction(session: Any, tables: Sequence[str]) -> None:
    """``DROP TABLE IF EXISTS`` each (qualified, validated) scratch table, never inside a transaction.

    Safe in a ``finally``: when a transaction may still be open on the session (its ROLLBACK failed
    and the session was closed), the tables are left in place with a warning rather than dropped,
    since the DROP would commit the transaction on Snowflake. A leftover scratch table holds no
    state the pipelines read.
    """
    if transaction_may_be_open(session):
        logger.warning(
            "Scratch table(s) %s left in place: the warehouse session may still hold an open transaction "
            "(a DROP would commit it on Snowflake). They hold nothing the pipelines read; drop them at will.",
            ", ".join(tables),
        )
        return
    for table in tables:
        session.sql(f"DROP TABLE IF EXISTS {table}").collect()


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
