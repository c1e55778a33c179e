"""Every workaround for the embedded Snowflake emulator (fakesnow server mode), in one place.

fakesnow translates Snowflake SQL to DuckDB. Snowpark is not a client its authors test, so a
few statements that Snowpark generates fail or come back wrong. Each patch below is small,
keeps the SQL valid Snowflake SQL (nothing here changes what runs on a real account), and has a
test in ``tests/warehouse/test_compat.py`` so that upgrading the pinned versions shows what
changed. Patches are applied once, only when the embedded warehouse starts.

Patched cases:

1. ``save_as_table`` (CTAS with a column list) of a SELECT that holds Snowflake-only syntax
   (``datediff``, ``iff`` ...): fakesnow DESCRIBEs the ``SELECT *`` in the generic SQL dialect.
   Fix: expand the star with a DESCRIBE rendered in DuckDB's dialect.
2. NULL timestamps came back to the client as 1970-01-01 (stored correctly): the Arrow struct
   that carries timestamps to the connector had no validity mask. Fix: keep the nulls.
3. ``write_pandas`` (PUT + ``COPY INTO t FROM (SELECT $1:"A" ... FROM '@"STAGE"')``): the quoted
   stage literal was refused as an "invalid URL prefix". Fix: resolve it as the stage it names.
4. Statements that DuckDB cannot run made the server answer HTTP 500, which the connector retries
   for minutes. Fix: answer with an ordinary SQL error (fails at once, with DuckDB's message).
5. The login answer had no ``masterToken``, so ``session.close()`` could not log out: the
   connection stayed open and Snowpark's exit hook then retried a query against the stopped
   server (the process hung at exit). Fix: return the session token as master token too.
6. ``ALTER SESSION SET QUERY_TAG = ... / TIMESTAMP_*_FORMAT = ...`` (sent at every session open)
   is "not implemented". Fix: accept it as a no-op (``NOP_REGEXES``). The emulator thus ignores
   the query tag (it has no query history to attribute) and the output formats: the code never
   relies on session formats (explicit ``TO_VARCHAR`` formats), and tests pin that SQL instead.
7. ``CREATE OR REPLACE TRANSIENT TABLE ... COPY GRANTS`` runs (DuckDB has neither Fail-safe nor
   grants, so a plain table is right), but sqlglot logs "Unsupported property transientproperty /
   copygrantsproperty" for every such statement. Fix: a filter drops exactly those two warnings.
8. ``RTRIM(x, '0')`` / ``LTRIM`` / ``TRIM(x, chars)`` of a non-VARCHAR expression: fakesnow wraps
   the operand in a cast to VARCHAR and silently drops the characters and the side, so
   ``RTRIM(TO_VARCHAR(ts, fmt), '0')`` came back as a two-sided blank trim. Fix: keep them.
9. A query that is a set operation in parentheses, as Snowpark writes ``union_all``
   (``(SELECT ...) UNION ALL (SELECT ...)``), ran, but fakesnow then describes its result with
   ``DESCRIBE (SELECT ...) UNION ALL ...``, which sqlglot cannot parse (HTTP 500, retried for
   minutes). Fix: describe such a query as ``SELECT * FROM (<query>)`` (same columns).
10. An insert-only ``MERGE INTO t USING s ON ... WHEN NOT MATCHED THEN INSERT`` (how merge
    datasets append idempotently) was rewritten by fakesnow as a FULL OUTER JOIN of the whole
    target with the source into a temporary table, then an INSERT from it: every new row written
    twice and the target read whole (10M new rows into an empty table: 10.5 s; as below: 4.5 s).
    Fix: run it as the equivalent ``INSERT INTO t (...) SELECT ... FROM s WHERE NOT EXISTS
    (SELECT 1 FROM t WHERE <on>)``: the same rows (a source row is inserted exactly when no target
    row matches it; source rows are not checked against each other, as in MERGE), one statement,
    and the result Snowflake gives such a MERGE ("number of rows inserted"). The SQL sent stays
    MERGE, so a real account keeps MERGE's locking (concurrent MERGEs on a table serialise).
11. ``CREATE TEMPORARY TABLE``: DuckDB keeps temporary tables in memory, uncompressed, spilling
    them to its temporary directory only under pressure. A 100M-event ingestion batch is 16 GB
    there (753 MB pinned at the 768 MB cap), and the next statement fails with "Out of Memory:
    could not allocate block". On Snowflake a temporary table is stored like any other table
    (https://docs.snowflake.com/en/user-guide/tables-temp-transient) and belongs to its session:
    another session may hold one of the same name, and it shadows a permanent table of that name.
    Fix: the emulator stores a session's temporary table as an ordinary table (compressed,
    evictable) of the same name in a schema of its own, ``_SEGMENTATION_TEMP_<session>_<schema>``
    of the same database, and maps that session's references to the table there. The schema is
    dropped when the session logs out or is ended by the server (its client died), when the
    server stops, or (after a crash) at the next login. Differences left: SHOW TABLES and
    INFORMATION_SCHEMA do not list a temporary table under its schema (they list the session's
    schema while it lives).
12. fakesnow creates a folder for staged files (``PUT``, ``write_pandas``) in the system's temporary
    directory when it is imported (``fakesnow_bucket_*``) and never removes it: every process that
    ran the emulator (each embedded server, each in-process run or test worker) left one behind,
    with the files staged in it (1,484 folders in /tmp after three test-suite runs here).
    Fix: removed when the process exits (``atexit``; the embedded server, which leaves by
    ``os._exit``, removes it just before); staged files are only read by COPY INTO statements of
    the same process, within its life.
"""

from __future__ import annotations

import logging
from typing import Any

logger = logging.getLogger(__name__)

_APPLIED = False

#: Statements the emulator must accept as no-ops (Snowpark sends this on ``session.close()``).
NOP_REGEXES = [r"select system\$cancel_all_queries.*", r"alter session set .*"]

#: sqlglot warnings about table properties DuckDB has no use for (see 7 above).
_SILENCED_PROPERTIES = ("Unsupported property transientproperty", "Unsupported property copygrantsproperty")


class _SilenceTableProperties(logging.Filter):
    """Drop sqlglot's warnings about TRANSIENT / COPY GRANTS (meaningless on DuckDB)."""

    _segmentation_patch = True

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(_SILENCED_PROPERTIES)


def _patch_table_property_warnings() -> None:
    sqlglot_logger = logging.getLogger("sqlglot")
    if not any(getattr(f, "_segmentation_patch", False) for f in sqlglot_logger.filters):
        sqlglot_logger.addFilter(_SilenceTableProperties())


def _patch_create_table_as() -> None:
    import fakesnow.transforms as transforms
    from sqlglot import exp

    original = transforms.create_table_as
    if getattr(original, "_segmentation_patch", False):
        return

    def create_table_as(expression: exp.Expr, duck_conn: Any) -> exp.Expr:
        if (
            isinstance(expression, exp.Create)
            and expression.kind == "TABLE"
            and isinstance(expression.expression, (exp.Select, exp.Subquery))
            and isinstance(expression.this, exp.Schema)
            and len(expression.this.expressions) > 0
        ):
            select = expression.expression
            select = select.unnest() if isinstance(select, exp.Subquery) else select
            if any(isinstance(e, exp.Star) for e in select.expressions):
                duck_conn.execute("DESCRIBE " + select.sql(dialect="duckdb"))
                select.set(
                    "expressions",
                    [
                        exp.Column(this=exp.Identifier(this=row[0], quoted=True))
                        for row in duck_conn.fetchall()
                    ],
                )
        return original(expression, duck_conn)

    create_table_as._segmentation_patch = True  # type: ignore[attr-defined]
    transforms.create_table_as = create_table_as


def _patch_null_timestamps() -> None:
    import fakesnow.arrow as fs_arrow
    import pyarrow as pa
    import pyarrow.compute as pc

    original = fs_arrow.timestamp_to_sf_struct
    if getattr(original, "_segmentation_patch", False):
        return

    def timestamp_to_sf_struct(ts: Any) -> pa.Array:
        if isinstance(ts, pa.ChunkedArray):
            ts = ts.combine_chunks()
        if ts.null_count == 0:
            return original(ts)
        mask = ts.is_null()
        filled = pc.fill_null(ts, pa.scalar(0, type=ts.type))
        struct = original(filled)
        return pa.StructArray.from_arrays(
            arrays=[struct.field(i) for i in range(struct.type.num_fields)],
            fields=list(struct.type),
            mask=mask,
        )

    timestamp_to_sf_struct._segmentation_patch = True  # type: ignore[attr-defined]
    fs_arrow.timestamp_to_sf_struct = timestamp_to_sf_struct


def _patch_copy_from_stage_literal() -> None:
    import fakesnow.copy_into as copy_into
    from sqlglot import exp

    original = copy_into._from_source
    if getattr(original, "_segmentation_patch", False):
        return

    def _from_source(expr: exp.Copy) -> str:
        source = expr.args["files"][0].this
        if isinstance(source, exp.Select) and (from_ := source.args.get("from_")) is not None:
            table = from_.this
            if (
                isinstance(table, exp.Table)
                and isinstance(table.this, exp.Literal)
                and table.this.name.startswith("@")
            ):
                return table.this.name.replace('"', "")
        return original(expr)

    _from_source._segmentation_patch = True  # type: ignore[attr-defined]
    copy_into._from_source = _from_source


def _patch_unhandled_errors() -> None:
    import fakesnow.cursor as fs_cursor
    import snowflake.connector.errors as sf_errors

    original = fs_cursor.FakeSnowflakeCursor.execute
    if getattr(original, "_segmentation_patch", False):
        return

    def execute(self: Any, command: str, *args: Any, **kwargs: Any) -> Any:
        try:
            return original(self, command, *args, **kwargs)
        except (sf_errors.ProgrammingError, sf_errors.OperationalError):
            raise
        except Exception as exc:  # an emulator limitation, not a user error
            raise sf_errors.ProgrammingError(
                msg=f"The embedded warehouse (fakesnow) cannot run this statement: {type(exc).__name__}: {exc}",
                errno=9998,
                sqlstate="0A000",
            ) from exc

    execute._segmentation_patch = True  # type: ignore[attr-defined]
    fs_cursor.FakeSnowflakeCursor.execute = execute


def _patch_login_master_token() -> None:
    import json

    import fakesnow.server as fs_server
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    routes = fs_server.app.router.routes
    for i, route in enumerate(routes):
        if getattr(route, "path", None) != "/session/v1/login-request":
            continue
        original = route.endpoint
        if getattr(original, "_segmentation_patch", False):
            return

        async def login_request(request: Any) -> Any:
            response = await original(request)
            body = json.loads(response.body)
            data = body.get("data") or {}
            if body.get("success") and data.get("token") and not data.get("masterToken"):
                data["masterToken"] = data["token"]
                return JSONResponse(body, status_code=response.status_code)
            return response

        login_request._segmentation_patch = True  # type: ignore[attr-defined]
        routes[i] = Route(route.path, login_request, methods=["POST"])
        return


def _patch_trim_arguments() -> None:
    import fakesnow.transforms as transforms
    from sqlglot import exp

    original = transforms.trim_cast_varchar
    if getattr(original, "_segmentation_patch", False):
        return

    def trim_cast_varchar(expression: exp.Expr) -> exp.Expr:
        result = original(expression)
        if isinstance(expression, exp.Trim) and isinstance(result, exp.Trim) and result is not expression:
            for arg in ("expression", "position", "collation"):
                if expression.args.get(arg) is not None:
                    result.set(arg, expression.args[arg])
        return result

    trim_cast_varchar._segmentation_patch = True  # type: ignore[attr-defined]
    transforms.trim_cast_varchar = trim_cast_varchar


def _patch_describe_set_operation() -> None:
    import fakesnow.cursor as fs_cursor
    import sqlglot

    original = fs_cursor.FakeSnowflakeCursor._describe_last_sql  # noqa: SLF001
    if getattr(original, "_segmentation_patch", False):
        return

    def _describe_last_sql(self: Any) -> list:
        last = (self._last_sql or "").lstrip()  # noqa: SLF001
        if not last.startswith("("):
            return original(self)
        with self._conn.cursor() as cur:  # noqa: SLF001
            expression = sqlglot.parse_one(f"DESCRIBE SELECT * FROM ({last})", read="duckdb")
            cur._execute(expression, self._last_params)  # noqa: SLF001
            return cur.fetchall()

    _describe_last_sql._segmentation_patch = True  # type: ignore[attr-defined]
    fs_cursor.FakeSnowflakeCursor._describe_last_sql = _describe_last_sql  # noqa: SLF001


def insert_only_merge_as_insert(expression: Any) -> Any:
    """The INSERT ... WHERE NOT EXISTS equivalent of an insert-only MERGE, or None for any other statement."""
    from sqlglot import exp

    if not isinstance(expression, exp.Merge):
        return None
    whens = expression.args.get("whens")
    clauses = list(whens.expressions) if isinstance(whens, exp.Whens) else list(whens or [])
    if len(clauses) != 1:
        return None
    when = clauses[0]
    insert = when.args.get("then")
    if when.args.get("matched") or when.args.get("condition") or not isinstance(insert, exp.Insert):
        return None
    columns, values = insert.this, insert.expression
    if not isinstance(columns, exp.Tuple) or not isinstance(values, exp.Tuple):
        return None
    target, source, on = expression.this, expression.args.get("using"), expression.args.get("on")
    if not isinstance(target, exp.Table) or source is None or on is None:
        return None
    unaliased = target.copy()
    unaliased.set("alias", None)
    absent = exp.Exists(this=exp.select("1").from_(target.copy()).where(on.copy())).not_()
    select = exp.select(*[v.copy() for v in values.expressions]).from_(source.copy()).where(absent)
    return exp.Insert(
        this=exp.Schema(this=unaliased, expressions=[c.copy() for c in columns.expressions]),
        expression=select,
    )


def _patch_insert_only_merge() -> None:
    import fakesnow.cursor as fs_cursor

    original = fs_cursor.FakeSnowflakeCursor._transform_explode  # noqa: SLF001
    if getattr(original, "_segmentation_patch", False):
        return

    def _transform_explode(self: Any, expression: Any) -> list:
        insert = insert_only_merge_as_insert(expression)
        return [insert] if insert is not None else original(self, expression)

    _transform_explode._segmentation_patch = True  # type: ignore[attr-defined]
    fs_cursor.FakeSnowflakeCursor._transform_explode = _transform_explode  # noqa: SLF001


#: Schema prefix of the emulated temporary tables (11 above): ``<prefix><session id>_<schema>``.
TEMPORARY_SCHEMA_PREFIX = "_SEGMENTATION_TEMP_"
#: Comment that marked a temporary table stored in its own schema (before the per-session schemas):
#: such leftovers of an older server are still dropped at the next login.
TEMPORARY_TABLE_MARKER = "segmentation-emulator: temporary table of session "
_SESSION_ID = "_segmentation_session_id"
_TEMPORARY_TABLES = "_segmentation_temporary_tables"
_PENDING = "_segmentation_pending_temporary"
_SID_LENGTH = 32


def _session_id(conn: Any) -> str:
    """A stable id for one emulator session (a fakesnow connection)."""
    import uuid

    if not getattr(conn, _SESSION_ID, None):
        setattr(conn, _SESSION_ID, uuid.uuid4().hex)
        setattr(conn, _TEMPORARY_TABLES, {})
    return getattr(conn, _SESSION_ID)


def temporary_tables(conn: Any) -> dict[tuple[str, str, str], str]:
    """A session's temporary tables: (DATABASE, SCHEMA, NAME) as the client names them -> physical schema."""
    _session_id(conn)
    return getattr(conn, _TEMPORARY_TABLES)


def temporary_schema(session_id: str, schema: str) -> str:
    """The schema that holds a session's temporary tables of ``schema`` (same database, same table name)."""
    return f"{TEMPORARY_SCHEMA_PREFIX}{session_id}_{schema}"


def _live_session_ids() -> set[str]:
    import fakesnow.server as fs_server

    return {i for c in list(fs_server.sessions.values()) if (i := getattr(c, _SESSION_ID, None))}


def _quoted(*parts: str) -> str:
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def _table_key(conn: Any, table: Any) -> tuple[str, str, str] | None:
    """(DATABASE, SCHEMA, NAME) a table reference resolves to in ``conn``'s session (upper case)."""
    name, schema, catalog = table.name, table.db or conn.schema, table.catalog or conn.database
    if not (name and schema and catalog):
        return None
    return (catalog.upper(), schema.upper(), name.upper())


def _retarget(table: Any, catalog: str, schema: str) -> None:
    from sqlglot import exp

    table.set("catalog", exp.Identifier(this=catalog, quoted=True))
    table.set("db", exp.Identifier(this=schema, quoted=True))


def map_temporary_tables(conn: Any, transformed: Any) -> Any:
    """Session-scoped temporary tables (11 above): each session's live in its own schemas.

    ``CREATE [OR REPLACE] TEMPORARY TABLE [db.][schema.]name`` creates ``name`` in the schema
    ``_SEGMENTATION_TEMP_<session>_<schema>`` of the same database, as an ordinary (compressed,
    evictable) table, and every later reference of that session to ``[db.][schema.]name`` is
    mapped there: the temporary table shadows a permanent table of the same name, as on
    Snowflake, and another session's temporary table of the same name is another table.

    Runs before fakesnow's own transform (whose CTAS DESCRIBE must already see the mapped names)
    and again after it (``identifier(?)`` is resolved there); a mapped reference is not mapped
    again. What to remember once the statement ran is noted on the connection (``_note``).
    """
    from sqlglot import exp

    registry = temporary_tables(conn)
    created = None
    if isinstance(transformed, exp.Create) and (transformed.kind or "").upper() == "TABLE":
        target = transformed.this.this if isinstance(transformed.this, exp.Schema) else transformed.this
        created = target
        temporary = transformed.find(exp.TemporaryProperty)
        key = _table_key(conn, target) if isinstance(target, exp.Table) else None
        if temporary is not None and key is not None:
            shadow = temporary_schema(_session_id(conn), key[1])
            conn._duck_conn.execute(f"CREATE SCHEMA IF NOT EXISTS {_quoted(key[0], shadow)}")  # noqa: SLF001
            _retarget(target, key[0], shadow)
            temporary.pop()
            _pending(conn).append(("create", key, shadow))
    if not registry:
        return transformed
    dropped = []
    if isinstance(transformed, exp.Drop) and (transformed.kind or "").upper() == "TABLE":
        targets = transformed.args.get("tables") or [transformed.this]
        dropped = [k for t in targets if isinstance(t, exp.Table) and (k := _table_key(conn, t)) in registry]
    ctes = {cte.alias_or_name.upper() for cte in transformed.find_all(exp.CTE)}
    for table in list(transformed.find_all(exp.Table)):
        if table is created or (not table.args.get("db") and table.name.upper() in ctes):
            continue
        key = _table_key(conn, table)
        if key is not None and key in registry:
            _retarget(table, key[0], registry[key])
    if dropped:
        _pending(conn).extend(("drop", key, None) for key in dropped)
    return transformed


def _pending(conn: Any) -> list[tuple[str, tuple[str, str, str], str | None]]:
    pending = getattr(conn, _PENDING, None)
    if pending is None:
        pending = []
        setattr(conn, _PENDING, pending)
    return pending


def _note_temporary_tables(conn: Any, ran: bool) -> None:
    """After a statement: if it ran, remember a created temporary table, forget a dropped one."""
    pending = _pending(conn)
    if ran:
        for action, key, shadow in pending:
            if action == "create" and shadow is not None:
                temporary_tables(conn)[key] = shadow
            else:
                temporary_tables(conn).pop(key, None)
    pending.clear()


def drop_temporary_tables(conn: Any, stale_only: bool = False) -> int:
    """Drop the temporary tables of ``conn``'s session (its temporary schemas), or (``stale_only``)
    those in its database left by sessions that are gone (a server crash). Returns how many schemas
    or tables were dropped. Never raises: cleanup must not fail a login or a logout."""
    dropped = 0
    cur = conn._duck_conn.cursor()  # noqa: SLF001
    try:
        if stale_only:
            if not conn.database:
                return 0
            live = _live_session_ids()
            schemas = [
                (database, schema)
                for database, schema in cur.execute(
                    "SELECT database_name, schema_name FROM duckdb_schemas() "
                    "WHERE database_name = ? AND starts_with(schema_name, ?)",
                    [conn.database, TEMPORARY_SCHEMA_PREFIX],
                ).fetchall()
                if schema[len(TEMPORARY_SCHEMA_PREFIX) :][:_SID_LENGTH] not in live
            ]
            rows = cur.execute(
                "SELECT database_name, schema_name, table_name, comment FROM duckdb_tables() "
                "WHERE database_name = ? AND NOT temporary AND starts_with(comment, ?)",
                [conn.database, TEMPORARY_TABLE_MARKER],
            ).fetchall()
            tables = [r[:3] for r in rows if r[3][len(TEMPORARY_TABLE_MARKER) :] not in live]
        else:
            registry = temporary_tables(conn)
            schemas = sorted({(key[0], shadow) for key, shadow in registry.items()})
            tables = []
        for database, schema in schemas:
            cur.execute(f"DROP SCHEMA IF EXISTS {_quoted(database, schema)} CASCADE")
            dropped += 1
        for catalog, schema, name in tables:
            cur.execute(f"DROP TABLE IF EXISTS {_quoted(catalog, schema, name)}")
            dropped += 1
    except Exception as exc:  # noqa: BLE001 - cleanup must never fail a login or a logout
        logger.warning("Could not drop the emulator's temporary tables: %s", exc)
    finally:
        cur.close()
    if not stale_only:
        temporary_tables(conn).clear()
    return dropped


class _Sessions(dict):
    """fakesnow's session registry: drops a session's temporary tables at logout (11 above),
    and stale ones left in a database by sessions that are gone, at the next login to it."""

    _segmentation_patch = True

    def __setitem__(self, token: str, conn: Any) -> None:
        _session_id(conn)
        super().__setitem__(token, conn)
        drop_temporary_tables(conn, stale_only=True)

    def __delitem__(self, token: str) -> None:
        conn = self.get(token)
        super().__delitem__(token)
        if conn is not None:
            drop_temporary_tables(conn)


def _patch_temporary_tables() -> None:
    import fakesnow.cursor as fs_cursor
    import fakesnow.server as fs_server

    if not getattr(fs_server.sessions, "_segmentation_patch", False):
        sessions = _Sessions()
        sessions.update(fs_server.sessions)
        fs_server.sessions = sessions
    transform, execute = fs_cursor.FakeSnowflakeCursor._transform, fs_cursor.FakeSnowflakeCursor._execute  # noqa: SLF001
    if getattr(transform, "_segmentation_patch", False):
        return

    def _transform(self: Any, expression: Any, params: Any) -> Any:
        conn = self._conn  # noqa: SLF001
        _pending(conn).clear()
        return map_temporary_tables(conn, transform(self, map_temporary_tables(conn, expression), params))

    def _execute(self: Any, transformed: Any, params: Any = None) -> None:
        try:
            execute(self, transformed, params)
        except BaseException:
            _note_temporary_tables(self._conn, ran=False)  # noqa: SLF001
            raise
        _note_temporary_tables(self._conn, ran=True)  # noqa: SLF001

    _transform._segmentation_patch = True  # type: ignore[attr-defined]
    _execute._segmentation_patch = True  # type: ignore[attr-defined]
    fs_cursor.FakeSnowflakeCursor._transform = _transform  # noqa: SLF001
    fs_cursor.FakeSnowflakeCursor._execute = _execute  # noqa: SLF001


def remove_stage_bucket() -> None:
    """12 above: remove this process's fakesnow stage folder now (the embedded server leaves by
    ``os._exit``, which skips ``atexit``, and calls this first)."""
    import shutil
    import sys

    path = getattr(sys.modules.get("fakesnow.transforms.stage"), "LOCAL_BUCKET_PATH", None)
    if path:
        shutil.rmtree(path, ignore_errors=True)


def _remove_stage_bucket_at_exit() -> None:
    """12 above: the folder fakesnow creates for staged files at import goes when the process ends."""
    import atexit

    import fakesnow.transforms.stage  # noqa: F401 - the folder exists from here on

    atexit.register(remove_stage_bucket)


def apply() -> None:
    """Apply every emulator patch (idempotent)."""
    global _APPLIED
    if _APPLIED:
        return
    _patch_create_table_as()
    _patch_null_timestamps()
    _patch_copy_from_stage_literal()
    _patch_unhandled_errors()
    _patch_login_master_token()
    _patch_table_property_warnings()
    _patch_trim_arguments()
    _patch_describe_set_operation()
    _patch_insert_only_merge()
    _patch_temporary_tables()
    _remove_stage_bucket_at_exit()
    _APPLIED = True
    logger.debug("Embedded warehouse compatibility patches applied")
