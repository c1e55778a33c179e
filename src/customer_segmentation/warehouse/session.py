"""The single connection point: one Snowpark session per process, to Snowflake or the emulator.

``configure()`` is called by the project hook with the run's settings; ``get_session()`` opens the
session on first use (or reuses the open one) and is what every Snowpark dataset calls;
``close()`` ends it at the end of a run (the shared embedded server keeps running for other
clients until it is idle). Without a hook (``kedro viz run`` without ``--include-hooks``) the
settings come from the project's configuration on first use.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from customer_segmentation.errors import SegmentationError, WarehouseConnectionError
from customer_segmentation.warehouse import embedded
from customer_segmentation.warehouse.config import WarehouseSettings, redact

logger = logging.getLogger(__name__)

_LOCK = threading.RLock()
_settings: WarehouseSettings | None = None
_session: Any = None
_session_key: tuple[Any, ...] | None = None
#: The embedded server the open session talks to (None for Snowflake or the in-process emulator).
_server: embedded.ServerHandle | None = None
#: Held from begin_run() to close(): one pipeline run at a time per embedded warehouse.
_run_lock: embedded.RunLock | None = None
#: What the run tags its statements with (QUERY_TAG), e.g. project, pipeline, run id.
_query_tag: dict[str, Any] = {"project": "customer_segmentation"}

#: Session parameters the code relies on, set at every open so that account or user defaults
#: cannot change them (https://docs.snowflake.com/en/sql-reference/parameters: TIMESTAMP_*_FORMAT
#: and TIMEZONE are session parameters settable per account, user and session). Nothing hashes or
#: compares timestamp text without an explicit format (TO_VARCHAR(ts, fmt)); these make what the
#: client sees and how '2026-01-02 03:04:05' literals are read the same for every user.
#: AUTOCOMMIT is a session parameter too, and an account or user may set it to FALSE: every DML
#: statement would then open an implicit transaction that only a COMMIT or the next DDL ends, a
#: session closed before that rolls the writes back, and BEGIN would join unrelated earlier writes
#: (https://docs.snowflake.com/en/sql-reference/transactions, "Autocommit"). Pinned TRUE at open,
#: before any DML, since changing it inside a transaction commits that transaction.
SESSION_PARAMETERS: dict[str, str | bool] = {
    "AUTOCOMMIT": True,
    "TIMESTAMP_INPUT_FORMAT": "AUTO",
    "TIMESTAMP_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF9",
    "TIMESTAMP_NTZ_OUTPUT_FORMAT": "YYYY-MM-DD HH24:MI:SS.FF9",
    "DATE_INPUT_FORMAT": "AUTO",
    "DATE_OUTPUT_FORMAT": "YYYY-MM-DD",
    "TIMEZONE": "UTC",
}
#: Snowflake's limit on QUERY_TAG (2000 characters).
_QUERY_TAG_MAX = 2000


def configure(settings: WarehouseSettings) -> None:
    """Set the settings that the next ``get_session()`` uses; closes a session to another target."""
    global _settings
    with _LOCK:
        if _session is not None and _session_key != settings.key:
            close()
        _settings = settings
        _query_tag.clear()  # a new configuration is a new run: its tag starts afresh
        _query_tag["project"] = "customer_segmentation"
        _prefetch_server(settings)


#: settings key -> thread starting (or finding) the embedded server in the background
_prefetch: dict[tuple[Any, ...], tuple[threading.Thread, list[Any]]] = {}


def _prefetch_server(settings: WarehouseSettings) -> None:
    """Start (or find) the embedded server in the background, while Kedro builds its catalog.

    A cold server start costs 0.6-1.7 s (its Python imports); configure() runs early in every
    Kedro entry point, so by the first get_session() the server is usually up.
    """
    if not settings.is_embedded or settings.embedded_in_process or settings.embedded_dir is None:
        return
    if _session is not None or settings.key in _prefetch:
        return
    result: list[Any] = []

    def run() -> None:
        try:
            result.append(
                embedded.ensure_server(
                    settings.embedded_dir, settings.embedded_memory_limit, settings.embedded_idle_timeout
                )
            )
        except Exception as exc:  # noqa: BLE001 - get_session() starts again and reports it
            logger.debug("Background start of the embedded warehouse failed: %s", exc)

    thread = threading.Thread(target=run, name="embedded-warehouse-start", daemon=True)
    _prefetch[settings.key] = (thread, result)
    thread.start()


def _server_for(settings: WarehouseSettings) -> embedded.ServerHandle:
    """The embedded server: the background start's if it worked and is still current, else found or started now."""
    pending = _prefetch.pop(settings.key, None)
    if pending is not None:
        thread, result = pending
        thread.join()
        if result and embedded.is_current(result[0]):
            return result[0]
    return embedded.ensure_server(
        settings.embedded_dir, settings.embedded_memory_limit, settings.embedded_idle_timeout
    )


def current_settings() -> WarehouseSettings:
    """The configured settings (embedded default when nothing was configured)."""
    global _settings
    with _LOCK:
        if _settings is None:
            _settings = _settings_from_project()
        if _settings is None:
            raise SegmentationError(
                "No warehouse is configured and no Kedro project was found from the current directory "
                f"({Path.cwd()}). Run through Kedro (`kedro run`, `kedro jupyter`, `kedro viz run`) from the "
                "project folder, set KEDRO_PROJECT_PATH, or call customer_segmentation.warehouse.configure(...) first."
            )
        return _settings


def _find_project(start: Path) -> Path | None:
    """The Kedro project of this package at or above ``start`` (its pyproject.toml names it)."""
    for folder in (start, *start.parents):
        pyproject = folder / "pyproject.toml"
        if pyproject.is_file() and (folder / "conf").is_dir():
            text = pyproject.read_text(errors="replace")
            if "[tool.kedro]" in text and "customer_segmentation" in text:
                return folder
    return None


def _settings_from_project() -> WarehouseSettings | None:
    """Settings from the project's conf (credentials + ``warehouse`` parameters), as the hook builds them.

    kedro-viz without ``--include-hooks`` never calls our hook, but still asks datasets for
    previews: this lets a Snowpark dataset reach the warehouse on its own (read-only: no demo seed).
    """
    explicit = os.environ.get("KEDRO_PROJECT_PATH")
    project = Path(explicit).resolve() if explicit else _find_project(Path.cwd().resolve())
    if project is None:
        return None
    from customer_segmentation.project_conf import read_conf

    credentials_conf, parameters = read_conf(
        project, os.environ.get("KEDRO_ENV"), "credentials", "parameters"
    )
    credentials = credentials_conf.get("snowflake") or {}
    params = parameters.get("warehouse") or {}
    settings = WarehouseSettings.from_config(credentials, params, project)
    logger.info("Warehouse configured from the project's conf at %s: %s", project, settings.target)
    return settings


def _sql_string(value: str) -> str:
    """A single-quoted SQL string literal (quotes and backslashes escaped)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _sql_value(value: str | bool) -> str:
    """A parameter value as SQL: TRUE / FALSE for booleans, a string literal otherwise."""
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    return _sql_string(value)


def query_tag_text(tag: Mapping[str, Any]) -> str:
    """The QUERY_TAG value: compact JSON, cut to Snowflake's 2000-character limit."""
    return json.dumps(dict(tag), sort_keys=True, separators=(",", ":"), default=str)[:_QUERY_TAG_MAX]


def session_parameter_statements(tag: Mapping[str, Any] | None = None) -> list[str]:
    """The ALTER SESSION statements sent at open: AUTOCOMMIT and fixed formats, then the query tag.

    One ALTER SESSION may set several parameters, separated by spaces, commas or new lines
    (https://docs.snowflake.com/sql-reference/sql/alter-session).
    """
    formats = ", ".join(f"{name} = {_sql_value(value)}" for name, value in SESSION_PARAMETERS.items())
    statements = [f"ALTER SESSION SET {formats}"]
    if tag:
        statements.append(f"ALTER SESSION SET QUERY_TAG = {_sql_string(query_tag_text(tag))}")
    return statements


def set_query_tag(**fields: Any) -> None:
    """Update the run's QUERY_TAG (e.g. pipeline, run_id); applied at once when a session is open.

    QUERY_TAG shows in Snowflake's query history: how teams attribute cost and find a run's
    statements (https://docs.snowflake.com/en/sql-reference/parameters#query-tag).
    """
    with _LOCK:
        _query_tag.update({k: v for k, v in fields.items() if v is not None})
        if _session is not None:
            _session.sql(session_parameter_statements(_query_tag)[-1]).collect()


def apply_session_parameters(session: Any, tag: Mapping[str, Any] | None = None) -> None:
    """Set the timestamp formats the code relies on and the query tag (ALTER SESSION)."""
    for statement in session_parameter_statements(tag):
        session.sql(statement).collect()


def check_session_context(session: Any, settings: WarehouseSettings, create_schema: bool = False) -> None:
    """Fail with a precise message when the session's database, schema or warehouse is unusable.

    Snowflake accepts a login whose database, schema or warehouse does not exist or is not
    granted to the role: CURRENT_DATABASE() / CURRENT_SCHEMA() / CURRENT_WAREHOUSE() are then NULL
    (https://docs.snowflake.com/sql-reference/functions/current_schema) and the first real query
    fails with "does not exist or not authorized" or "No active warehouse". The embedded warehouse
    has no warehouses (no CURRENT_WAREHOUSE()): that one check is skipped there.
    """
    embedded_target = settings.is_embedded
    role = settings.connection.get("role")
    columns = "CURRENT_DATABASE(), CURRENT_SCHEMA()" + (
        "" if embedded_target else ", CURRENT_WAREHOUSE(), CURRENT_ROLE()"
    )
    row = list(session.sql(f"SELECT {columns}").collect()[0])
    database, schema = row[0], row[1]
    warehouse_name = None if embedded_target else row[2]
    role = (None if embedded_target else row[3]) or role
    as_role = f"role {role}" if role else "the user's default role"
    if database is None:
        raise WarehouseConnectionError(
            f"Database {settings.database} does not exist on {settings.target}, or {as_role} may not use it. "
            f"Set SNOWFLAKE_DATABASE to an existing database, or create it and grant it: "
            f"GRANT USAGE ON DATABASE {settings.database} TO ROLE <role> (SNOWFLAKE_ROLE chooses the role)."
        )
    if schema is None:
        fqn = f"{settings.database}.{settings.schema}"
        if create_schema:
            # CREATE SCHEMA IF NOT EXISTS leaves an existing schema as it is; USE makes it current
            session.sql(f"CREATE SCHEMA IF NOT EXISTS {fqn}").collect()
            session.sql(f"USE SCHEMA {fqn}").collect()
            logger.warning("Created schema %s (parameter warehouse.create_schema is true)", fqn)
        else:
            raise WarehouseConnectionError(
                f"Schema {fqn} does not exist on {settings.target}, or {as_role} may not use it. "
                f"Set SNOWFLAKE_SCHEMA to an existing schema, create it (CREATE SCHEMA {fqn}) and "
                f"GRANT USAGE, CREATE TABLE ON SCHEMA {fqn} TO ROLE <role>, or let the project create it "
                "with --params=warehouse.create_schema=true."
            )
    if not embedded_target and warehouse_name is None:
        configured = settings.connection.get("warehouse")
        what = (
            f"Warehouse {configured} does not exist, or {as_role} may not use it"
            if configured
            else "No warehouse is set"
        )
        raise WarehouseConnectionError(
            f"{what} on {settings.target}: queries need a running warehouse. Set SNOWFLAKE_WAREHOUSE to a "
            "warehouse the role may use (GRANT USAGE ON WAREHOUSE <name> TO ROLE <role>; SNOWFLAKE_ROLE chooses the role)."
        )


def prepare_session(session: Any, settings: WarehouseSettings) -> None:
    """What every new session gets before any dataset uses it: formats, query tag, context checks."""
    apply_session_parameters(session, _query_tag)
    check_session_context(session, settings, create_schema=settings.create_schema)


def is_open() -> bool:
    return _session is not None


#: Connector error numbers of a refused login (wrong user, password, key or MFA).
_LOGIN_REFUSED = {390100, 390144}
#: How long a failed request to Snowflake is retried (network down, service unavailable) before
#: the run fails; not a limit on how long a statement runs (Snowflake's STATEMENT_TIMEOUT_IN_SECONDS is).
SNOWFLAKE_RETRY_SECONDS = 600

#: Connector error numbers of an unreachable account (DNS, refused connection, timeout).
_UNREACHABLE = {250001, 250003}


def _connection_hint(exc: BaseException) -> str:
    """One sentence saying whether the login was refused or the account not reached."""
    errno = getattr(exc, "errno", None)
    text = str(exc).lower()
    if errno in _LOGIN_REFUSED or "incorrect username or password" in text or "jwt token is invalid" in text:
        return (
            "Snowflake refused the login: check SNOWFLAKE_USER and SNOWFLAKE_PASSWORD "
            "(or SNOWFLAKE_PRIVATE_KEY_FILE and SNOWFLAKE_PRIVATE_KEY_FILE_PWD). "
        )
    if errno in _UNREACHABLE or any(
        t in text for t in ("could not connect", "failed to connect", "timed out", "name or service")
    ):
        return "The account could not be reached (wrong SNOWFLAKE_ACCOUNT, or no network route to it). "
    return ""


def snowflake_connection_parameters(settings: WarehouseSettings) -> dict[str, Any]:
    """The connector parameters of a Snowflake session: the configured ones over the defaults below.

    No ``network_timeout``: the connector would cancel every statement that runs longer than it
    (warehouse/retries.py); a failed request's retries are bounded by ``backoff_policy`` instead,
    and a statement runs as long as Snowflake's STATEMENT_TIMEOUT_IN_SECONDS allows.
    """
    from customer_segmentation.warehouse.retries import retry_policy

    params = {
        "login_timeout": 60,
        "backoff_policy": retry_policy(SNOWFLAKE_RETRY_SECONDS),
        **settings.connection,
    }
    params.setdefault("application", "customer_segmentation_kedro")
    return params


def _open(settings: WarehouseSettings) -> Any:
    global _server
    from snowflake.snowpark import Session

    if settings.is_embedded:
        if settings.embedded_dir is None:
            raise SegmentationError(
                "The embedded warehouse needs a data folder (parameter warehouse.embedded_dir)."
            )
        if settings.embedded_in_process:
            server = embedded.ensure_running(
                settings.embedded_dir, settings.database, settings.embedded_memory_limit
            )
            params = server.connection_parameters(settings.database, settings.schema)
        else:
            handle = _server_for(settings)
            params = embedded.server_connection_parameters(handle, settings.database, settings.schema)
            _server = handle
    else:
        params = snowflake_connection_parameters(settings)
    logger.info(
        "Opening warehouse session: %s (database %s, schema %s)",
        settings.target,
        settings.database,
        settings.schema,
    )
    try:
        session = Session.builder.configs(params).create()
    except Exception as exc:  # the connector raises many kinds; report them all the same way
        message = redact(str(exc), settings)
        if settings.is_embedded:
            raise WarehouseConnectionError(f"Could not open the embedded warehouse: {message}") from None
        raise WarehouseConnectionError(
            f"Could not connect to {settings.target} as user {settings.connection.get('user')!r}: {message}. "
            f"{_connection_hint(exc)}Check SNOWFLAKE_ACCOUNT (e.g. 'xy12345.eu-central-1' or 'orgname-accountname'), "
            "SNOWFLAKE_USER, SNOWFLAKE_PASSWORD or SNOWFLAKE_PRIVATE_KEY_FILE, SNOWFLAKE_ROLE and "
            "SNOWFLAKE_WAREHOUSE, and that this machine can reach the account."
        ) from None
    return session


def get_session() -> Any:
    """The process's Snowpark session, opened on first use and reused afterwards."""
    global _session, _session_key
    with _LOCK:
        settings = current_settings()
        if (
            _session is not None
            and _session_key == settings.key
            and (_server is None or embedded.is_current(_server))
        ):
            return _session
        if _session is not None:
            if _server is not None and not embedded.is_current(_server):
                logger.info("The embedded warehouse server stopped (idle or stopped by hand): reconnecting")
            _close_session()
        session = _open(settings)
        _session, _session_key = session, settings.key
        try:
            prepare_session(session, settings)
        except BaseException:
            close()
            raise
        return session


def discard_session(session: Any) -> None:
    """Close ``session`` without another statement on it, and stop handing it out.

    For a session that may still hold an open transaction (its ROLLBACK failed, see
    ``tables.transaction``): a later DDL on it would commit that transaction on Snowflake, while
    closing it rolls the transaction back ("If a session with an open transaction is closed, then
    the open transaction is rolled back", https://docs.snowflake.com/en/sql-reference/transactions).
    The next ``get_session()`` opens a new session.
    """
    global _session, _session_key
    with _LOCK:
        if session is _session:
            _session, _session_key = None, None
    try:
        session.close()
    except BaseException:  # noqa: BLE001 - the connection may be gone already; nothing else to do
        logger.debug("Closing a discarded warehouse session failed", exc_info=True)


def begin_run(label: str) -> None:
    """Take the embedded warehouse's run lock (waits for another pipeline run on it); close() releases it."""
    global _run_lock
    settings = current_settings()
    if not settings.is_embedded or settings.embedded_dir is None:
        return  # concurrent runs on real Snowflake are the scheduler's business
    with _LOCK:
        if _run_lock is None:
            _run_lock = embedded.RunLock(settings.embedded_dir)
    _run_lock.acquire(settings.run_lock_timeout, label)
    try:
        get_session()  # fail fast, and never keep the lock after a failed start (no after-run hook then)
    except BaseException:
        close()
        raise


def _forget_connection(session: Any) -> None:
    """Mark a session whose server is gone as closed without a network call.

    ``session.close()`` would send a cancel and a logout to the stopped server, and the connector
    retries those for minutes. With its REST object dropped, the connector treats the connection
    as closed (``is_closed()``) and its ``close()`` returns at once.
    """
    connection = getattr(getattr(session, "_conn", None), "_conn", None)
    if connection is not None and hasattr(connection, "_rest"):
        connection._rest = None


def _close_session() -> None:
    global _session, _session_key, _server
    if _session is not None:
        if _server is not None and not embedded.is_current(_server):
            _forget_connection(_session)  # its server is gone: nothing to log out from
        try:
            _session.close()
        except Exception as exc:  # pragma: no cover - closing must never mask the real error
            logger.debug("Ignoring error on session close: %s", exc)
        logger.info("Warehouse session closed")
    _session, _session_key, _server = None, None, None


def close() -> None:
    """Close the session and release the run lock (safe to call at any time).

    The shared embedded server keeps running for other clients and stops when idle; the
    in-process emulator (``SEGMENTATION_EMBEDDED_IN_PROCESS=1``) stops here.
    """
    global _run_lock
    with _LOCK:
        _close_session()
        embedded.stop()
        if _run_lock is not None:
            _run_lock.release()
            _run_lock = None
        pending = list(_prefetch.values())
        _prefetch.clear()
    # a background start still in flight finishes first: after close() no thread of this process is
    # starting a server (one that came up is found by its record, and stops when idle or when asked)
    for thread, _result in pending:
        thread.join()


atexit.register(close)
