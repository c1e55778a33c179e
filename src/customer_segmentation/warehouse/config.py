"""Which warehouse to use, decided from credentials alone."""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from customer_segmentation.errors import InvalidParametersError, MissingCredentialsError
from customer_segmentation.warehouse.identifiers import validate_identifier

DEFAULT_DATABASE = "SEGMENTATION"
DEFAULT_SCHEMA = "PUBLIC"
#: Environment switch to the in-process emulator (the scale benchmark measures it in its own process).
IN_PROCESS_ENV = "SEGMENTATION_EMBEDDED_IN_PROCESS"

#: Connection keys that are secret: never logged, never shown.
SECRET_KEYS = frozenset({"password", "private_key", "private_key_file_pwd", "token", "passcode"})

#: Credential key -> environment variable that fills it (conf/base/credentials.yml).
ENV_VARIABLES = {
    "account": "SNOWFLAKE_ACCOUNT",
    "user": "SNOWFLAKE_USER",
    "password": "SNOWFLAKE_PASSWORD",
    "private_key_file": "SNOWFLAKE_PRIVATE_KEY_FILE",
    "private_key_file_pwd": "SNOWFLAKE_PRIVATE_KEY_FILE_PWD",
    "authenticator": "SNOWFLAKE_AUTHENTICATOR",
    "warehouse": "SNOWFLAKE_WAREHOUSE",
    "database": "SNOWFLAKE_DATABASE",
    "schema": "SNOWFLAKE_SCHEMA",
    "role": "SNOWFLAKE_ROLE",
}


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    return value


@dataclass(frozen=True)
class WarehouseSettings:
    """Where the warehouse is: real Snowflake (``account`` set) or the embedded emulator."""

    database: str = DEFAULT_DATABASE
    schema: str = DEFAULT_SCHEMA
    embedded_dir: Path | None = None
    connection: Mapping[str, Any] = field(default_factory=dict, repr=False)
    #: DuckDB memory cap of the embedded warehouse (it spills to disk beyond), e.g. "768MB".
    embedded_memory_limit: str | None = None
    #: Create the schema at session open when it is missing (parameter ``warehouse.create_schema``).
    create_schema: bool = False
    #: The embedded server stops after this many seconds without a client request (0: never).
    embedded_idle_timeout: float = 600.0
    #: How long a pipeline run waits for another run on the same embedded warehouse to finish.
    run_lock_timeout: float = 600.0
    #: Run the emulator inside this process (one process at a time) instead of the shared server.
    embedded_in_process: bool = field(default_factory=lambda: os.environ.get(IN_PROCESS_ENV, "") == "1")

    @property
    def is_embedded(self) -> bool:
        return not self.connection.get("account")

    @property
    def target(self) -> str:
        """Human description of the target, safe to log (no secret)."""
        if self.is_embedded:
            return f"embedded warehouse at {self.embedded_dir}"
        return f"Snowflake account {self.connection['account']}"

    @property
    def key(self) -> tuple[Any, ...]:
        """Identity of the target, to reuse a session opened for the same settings."""
        if self.is_embedded:
            return ("embedded", str(self.embedded_dir), self.database, self.schema)
        return (
            "snowflake",
            self.connection.get("account"),
            self.connection.get("user"),
            self.database,
            self.schema,
        )

    @classmethod
    def from_credentials(
        cls,
        credentials: Mapping[str, Any] | None,
        embedded_dir: str | Path | None,
        embedded_memory_limit: str | None = None,
        create_schema: bool = False,
        idle_timeout_seconds: Any = None,
        run_lock_timeout_seconds: Any = None,
    ) -> WarehouseSettings:
        """Build settings from the ``snowflake`` credentials entry; validates what it can."""
        creds = {k: _clean(v) for k, v in dict(credentials or {}).items()}
        remember_secrets(creds)
        install_log_redaction()
        database = validate_identifier(creds.get("database") or DEFAULT_DATABASE, "database name")
        schema = validate_identifier(creds.get("schema") or DEFAULT_SCHEMA, "schema name")
        embedded = Path(embedded_dir).resolve() if embedded_dir else None
        memory = validate_memory_limit(embedded_memory_limit)
        if not isinstance(create_schema, bool):
            raise InvalidParametersError(
                f"warehouse.create_schema must be true or false, got {create_schema!r}."
            )
        idle = validate_seconds(idle_timeout_seconds, "warehouse.idle_timeout_seconds", 600.0)
        wait = validate_seconds(run_lock_timeout_seconds, "warehouse.run_lock_timeout_seconds", 600.0)
        if not creds.get("account"):
            return cls(
                database=database,
                schema=schema,
                embedded_dir=embedded,
                connection={},
                embedded_memory_limit=memory,
                create_schema=create_schema,
                embedded_idle_timeout=idle,
                run_lock_timeout=wait,
            )

        account = str(creds["account"])
        if (
            "://" in account
            or "snowflakecomputing.com" in account.lower()
            or any(c.isspace() for c in account)
        ):
            raise MissingCredentialsError(
                f"SNOWFLAKE_ACCOUNT is {account!r}: give the account identifier only, e.g. "
                "'xy12345.eu-central-1' or 'orgname-accountname' (no https://, no .snowflakecomputing.com)."
            )
        missing = []
        if not creds.get("user"):
            missing.append(ENV_VARIABLES["user"])
        if not (creds.get("password") or creds.get("private_key_file") or creds.get("authenticator")):
            missing.append(f"{ENV_VARIABLES['password']} (or {ENV_VARIABLES['private_key_file']})")
        if missing:
            raise MissingCredentialsError(
                f"SNOWFLAKE_ACCOUNT is set to {creds['account']!r}, so the project connects to real "
                f"Snowflake, but these are missing: {', '.join(missing)}. Set them in the environment "
                "or in conf/local/credentials.yml (git-ignored). Unset SNOWFLAKE_ACCOUNT to use the "
                "embedded warehouse instead."
            )
        if creds.get("private_key_file") and not Path(str(creds["private_key_file"])).expanduser().is_file():
            raise MissingCredentialsError(
                f"{ENV_VARIABLES['private_key_file']} points to {creds['private_key_file']!r}, which is not a "
                "readable file. Give the path of your PKCS#8 private key (.p8)."
            )
        connection = {k: v for k, v in creds.items() if v is not None and k not in ("database", "schema")}
        connection.update(database=database, schema=schema)
        return cls(
            database=database,
            schema=schema,
            embedded_dir=embedded,
            connection=connection,
            create_schema=create_schema,
        )

    @classmethod
    def from_config(
        cls,
        credentials: Mapping[str, Any] | None,
        warehouse_params: Mapping[str, Any] | None,
        project_path: Path,
    ) -> WarehouseSettings:
        """Settings from the ``snowflake`` credentials and the ``warehouse`` parameters of a project."""
        params = dict(warehouse_params or {})
        return cls.from_credentials(
            credentials,
            Path(project_path) / str(params.get("embedded_dir") or "data/warehouse"),
            params.get("memory_limit"),
            params.get("create_schema", False),
            idle_timeout_seconds=params.get("idle_timeout_seconds"),
            run_lock_timeout_seconds=params.get("run_lock_timeout_seconds"),
        )


def validate_seconds(value: Any, name: str, default: float) -> float:
    """A non-negative number of seconds (``None`` gives ``default``)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return default
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = -1.0
    if isinstance(value, bool) or not seconds >= 0 or seconds == float("inf"):
        raise InvalidParametersError(f"{name} must be a number of seconds >= 0, got {value!r}.")
    return seconds


#: Secret values seen in credentials this process (conf/local/credentials.yml may hold some).
_SECRETS: set[str] = set()
_FACTORY_LOCK = threading.Lock()
_factory_installed = False


def remember_secrets(credentials: Mapping[str, Any]) -> None:
    """Register the secret values of a credentials mapping, so that logs and errors never show them."""
    _SECRETS.update(str(v) for k, v in credentials.items() if k in SECRET_KEYS and v not in (None, ""))


def known_secrets(settings: WarehouseSettings | None = None) -> set[str]:
    """Secret values from the settings, the environment and every credentials seen."""
    secrets = set(_SECRETS)
    if settings is not None:
        secrets |= {str(v) for k, v in settings.connection.items() if k in SECRET_KEYS and v}
    for key in SECRET_KEYS:
        env = ENV_VARIABLES.get(key)
        if env and os.environ.get(env):
            secrets.add(os.environ[env])
    return {s for s in secrets if len(s) >= 3}


_MEMORY_LIMIT = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)


def validate_memory_limit(value: Any) -> str | None:
    """``warehouse.memory_limit`` as DuckDB accepts it (e.g. "768MB"), or None for DuckDB's default."""
    if value is None or str(value).strip() == "":
        return None
    text = str(value).strip()
    if not _MEMORY_LIMIT.match(text):
        raise InvalidParametersError(
            f"warehouse.memory_limit must look like '768MB' or '2GB', got {value!r}."
        )
    return text


def redact(text: str, settings: WarehouseSettings | None = None) -> str:
    """Remove any secret value (from settings, the environment or seen credentials) from ``text``."""
    for secret in sorted(known_secrets(settings), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def install_log_redaction() -> None:
    """Make every log record of the process free of secrets (idempotent).

    Kedro itself logs the resolved credentials when its logger is at DEBUG (the hook manager
    traces ``after_catalog_created(conf_creds=...)``), so redacting our own messages is not
    enough: the record factory replaces any known secret in each record's message, and in its
    traceback text, whatever logger or handler is involved.
    """
    global _factory_installed
    with _FACTORY_LOCK:
        if _factory_installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            secrets = known_secrets()
            if not secrets:
                return record
            try:
                message = record.getMessage()
            except Exception:  # a malformed record is logging's problem, not ours
                return record
            if any(secret in message for secret in secrets):
                record.msg, record.args = redact(message), None
            if record.exc_info and record.exc_info[1] is not None:
                text = logging.Formatter().formatException(record.exc_info)
                if any(secret in text for secret in secrets):
                    record.msg = f"{record.msg}\n{redact(text)}"
                    record.exc_info, record.exc_text = None, None
            return record

        logging.setLogRecordFactory(factory)
        _factory_installed = True
