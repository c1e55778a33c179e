"""The single connection point: one Snowpark session per process, to Snowflake or the emulator.

``configure()`` is called by the project hook with the run's settings; ``get_session()`` opens the
session on first use (or reuses the open one) and is what every Snowpark dataset calls;
``close()`` ends it (and stops the embedded emulator) at the end of a run.
"""

from __future__ import annotations

import atexit
import logging
import threading
from collections.abc import Callable
from typing import Any

from customer_segmentation.warehouse import embedded
from customer_segmentation.warehouse.config import WarehouseSettings, redact
from customer_segmentation.warehouse.errors import SegmentationError, WarehouseConnectionError

logger = logging.getLogger(__name__)

_LOCK = threading.RLock()
_settings: WarehouseSettings | None = None
_session: Any = None
_session_key: tuple[Any, ...] | None = None
#: Called once with each newly opened session (e.g. to create tables, seed demo data).
_on_open: list[Callable[[Any, WarehouseSettings], None]] = []


def configure(settings: WarehouseSettings, on_open: Callable[[Any, WarehouseSettings], None] | None = None) -> None:
    """Set the settings that the next ``get_session()`` uses; closes a session to another target."""
    global _settings
    with _LOCK:
        if _session is not None and _session_key != settings.key:
            close()
        _settings = settings
        _on_open.clear()
        if on_open is not None:
            _on_open.append(on_open)


def current_settings() -> WarehouseSettings:
    """The configured settings (embedded default when nothing was configured)."""
    with _LOCK:
        if _settings is None:
            raise SegmentationError(
                "No warehouse is configured. Run through Kedro (`kedro run`, `kedro jupyter`, `kedro viz run --include-hooks`; "
                "kedro-viz needs --include-hooks for table previews), or call customer_segmentation.warehouse.configure(...) first."
            )
        return _settings


def is_open() -> bool:
    return _session is not None


#: Connector error numbers of a refused login (wrong user, password, key or MFA).
_LOGIN_REFUSED = {390100, 390144}
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
    if errno in _UNREACHABLE or any(t in text for t in ("could not connect", "failed to connect", "timed out", "name or service")):
        return "The account could not be reached (wrong SNOWFLAKE_ACCOUNT, or no network route to it). "
    return ""


def _open(settings: WarehouseSettings) -> Any:
    from snowflake.snowpark import Session

    if settings.is_embedded:
        if settings.embedded_dir is None:
            raise SegmentationError("The embedded warehouse needs a data folder (parameter warehouse.embedded_dir).")
        server = embedded.ensure_running(settings.embedded_dir, settings.database, settings.embedded_memory_limit)
        params = server.connection_parameters(settings.database, settings.schema)
    else:
        params = {"login_timeout": 60, "network_timeout": 600, **settings.connection}
        params.setdefault("application", "customer_segmentation_kedro")
    logger.info("Opening warehouse session: %s (database %s, schema %s)", settings.target, settings.database, settings.schema)
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
        if _session is not None and _session_key == settings.key:
            return _session
        if _session is not None:
            close()
        session = _open(settings)
        _session, _session_key = session, settings.key
        try:
            for callback in list(_on_open):
                callback(session, settings)
        except BaseException:
            close()
            raise
        return session


def close() -> None:
    """Close the session and stop the embedded emulator (safe to call at any time)."""
    global _session, _session_key
    with _LOCK:
        if _session is not None:
            try:
                _session.close()
            except Exception as exc:  # pragma: no cover - closing must never mask the real error
                logger.debug("Ignoring error on session close: %s", exc)
            logger.info("Warehouse session closed")
        _session, _session_key = None, None
        embedded.stop()


atexit.register(close)
