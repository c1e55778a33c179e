"""The embedded default: a local Snowflake emulator (fakesnow server mode over DuckDB).

The project starts it itself, in a background thread of the running process, on a free loopback
port. Its tables live in DuckDB files under ``data/warehouse`` (one file per database), so they
survive between runs. DuckDB locks those files: one process at a time.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
import warnings
from pathlib import Path
from typing import Any

from customer_segmentation.warehouse import compat
from customer_segmentation.warehouse.errors import EmbeddedWarehouseBusyError

logger = logging.getLogger(__name__)

_LOCK = threading.Lock()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class EmbeddedWarehouse:
    """One running emulator bound to one data folder."""

    def __init__(self, path: Path, memory_limit: str | None = None) -> None:
        self.path = Path(path).resolve()
        self.memory_limit = memory_limit
        self.port: int | None = None
        self._server: Any = None
        self._thread: threading.Thread | None = None
        self._instance: Any = None

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _check_not_locked(self, database: str) -> None:
        import duckdb

        db_file = self.path / f"{database}.db"
        if not db_file.exists():
            return
        try:
            duckdb.connect(str(db_file)).close()
        except duckdb.IOException as exc:
            raise EmbeddedWarehouseBusyError(
                f"The embedded warehouse at {self.path} is in use by another process ({exc}). "
                "Only one process can use it at a time: wait for the other `kedro run`, "
                "`kedro viz` or notebook kernel to finish, or stop it."
            ) from None

    def start(self, database: str) -> None:
        """Start the emulator over ``self.path`` (idempotent)."""
        if self.running:
            return
        compat.apply()
        import fakesnow.instance
        import fakesnow.server
        import uvicorn

        # fakesnow logs every failed statement at INFO through uvicorn's handlers, and DuckDB warns
        # about an extra Arrow copy on each result: neither is news to our users.
        logging.getLogger("fakesnow.server").setLevel(logging.WARNING)
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
        self.path.mkdir(parents=True, exist_ok=True)
        self._check_not_locked(database)
        self._instance = fakesnow.instance.FakeSnow(db_path=str(self.path))
        # DuckDB runs inside this process: cap its memory (it spills to disk beyond) and keep the
        # spill files next to the warehouse, not in the current directory.
        spill = self.path / ".tmp"
        self._instance.duck_conn.execute(f"SET temp_directory = '{spill.as_posix()}'")
        if self.memory_limit:
            self._instance.duck_conn.execute(f"SET memory_limit = '{self.memory_limit}'")
        fakesnow.server.shared_fs = self._instance
        fakesnow.server.sessions.clear()
        self.port = _free_port()
        config = uvicorn.Config(
            fakesnow.server.app, host="127.0.0.1", port=self.port, log_level="error", access_log=False
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="embedded-warehouse", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The embedded warehouse did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        logger.info("Embedded warehouse started at %s (127.0.0.1:%s)", self.path, self.port)

    def connection_parameters(self, database: str, schema: str) -> dict[str, Any]:
        """Snowpark/connector parameters that reach this emulator (dummy, non-secret login)."""
        return {
            "user": "embedded",
            "password": "embedded",
            "account": "embedded",
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": "http",
            "database": database,
            "schema": schema,
            "socket_timeout": 3600,
            "network_timeout": 3600,
            "session_parameters": {"nop_regexes": compat.NOP_REGEXES},
        }

    def stop(self) -> None:
        """Stop the server and release the DuckDB files."""
        import fakesnow.server

        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        fakesnow.server.sessions.clear()
        if self._instance is not None:
            try:
                self._instance.duck_conn.close()
            except Exception:  # pragma: no cover - best effort at shutdown
                logger.debug("DuckDB connection already closed")
        self._server = self._thread = self._instance = None
        logger.info("Embedded warehouse at %s stopped", self.path)


_current: EmbeddedWarehouse | None = None


def ensure_running(path: Path, database: str, memory_limit: str | None = None) -> EmbeddedWarehouse:
    """Return the emulator for ``path``, starting it (and stopping one on another path) as needed."""
    global _current
    with _LOCK:
        resolved = Path(path).resolve()
        if _current is not None and (
            _current.path != resolved or not _current.running or _current.memory_limit != memory_limit
        ):
            _current.stop()
            _current = None
        if _current is None:
            warehouse = EmbeddedWarehouse(resolved, memory_limit)
            warehouse.start(database)
            _current = warehouse
        return _current


def stop() -> None:
    """Stop the running emulator, if any."""
    global _current
    with _LOCK:
        if _current is not None:
            _current.stop()
            _current = None
