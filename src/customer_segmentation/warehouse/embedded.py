"""The embedded default: a local Snowflake emulator (fakesnow server mode over DuckDB).

By default it runs as a separate, shared server process (``embedded_server.py``): the first
client of a warehouse folder (``kedro run``, ``kedro viz``, a notebook kernel, a test) starts it
on demand, later ones connect to the same process, so any number of processes use the warehouse
at once and see each other's writes. Its address and owner are in ``<folder>/server.json``; it
stops by itself after ``warehouse.idle_timeout_seconds`` without a request, or on
``kedro warehouse stop``.

``EmbeddedWarehouse`` below is the older in-process variant (a server thread inside the running
process, DuckDB files locked by that process: one process at a time). It remains for the scale
benchmark, which measures the warehouse's memory and rows inside the measured process
(``SEGMENTATION_EMBEDDED_IN_PROCESS=1``).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from customer_segmentation.errors import EmbeddedWarehouseBusyError, WarehouseConnectionError
from customer_segmentation.warehouse import compat

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
        self.secret = ""
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
        import secrets

        from customer_segmentation.warehouse import embedded_server

        # DuckDB runs inside this process, with the shared server's settings (memory cap, spill folder)
        embedded_server.configure_duckdb(self._instance.duck_conn, self.path, self.memory_limit)
        fakesnow.server.shared_fs = self._instance
        fakesnow.server.sessions.clear()
        self.port = _free_port()

        # owner-only here too: the secret lives in this process's memory only
        self.secret = secrets.token_urlsafe(32)
        upload_key = secrets.token_urlsafe(24)
        embedded_server._patch_upload_url(upload_key)  # noqa: SLF001
        app = embedded_server.SegmentationServerApp(
            fakesnow.server.app, embedded_server.ServerState(0), None, None, self.secret, upload_key
        )
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="error", access_log=False)
        # the shared server's uvicorn without the 0.1 s tick: it stops as soon as told (a stop at the
        # end of every run waited 0.1-0.15 s for the tick), and says when it is serving
        serving = threading.Event()
        self._server = embedded_server._Server.make(config, lambda loop: serving.set())  # noqa: SLF001
        self._thread = threading.Thread(target=self._server.run, name="embedded-warehouse", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 30
        while not serving.wait(0.005):
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"The embedded warehouse did not start on 127.0.0.1:{self.port}")
        logger.info("Embedded warehouse started at %s (127.0.0.1:%s)", self.path, self.port)

    def connection_parameters(self, database: str, schema: str) -> dict[str, Any]:
        """Snowpark/connector parameters that reach this emulator (its secret as password)."""
        from customer_segmentation.warehouse import retries  # imports the connector: only for a session

        return {
            "user": "embedded",
            "password": self.secret,
            "account": "embedded",
            "host": "127.0.0.1",
            "port": self.port,
            "protocol": "http",
            "database": database,
            "schema": schema,
            # as server_connection_parameters: no network_timeout, which would cancel long statements
            "socket_timeout": STATEMENT_WAIT_SECONDS,
            "backoff_policy": retries.retry_policy(SERVER_RETRY_SECONDS),
            "session_parameters": {"nop_regexes": compat.NOP_REGEXES},
        }

    def stop(self) -> None:
        """Stop the server and release the DuckDB files."""
        import fakesnow.server

        if self._server is not None:
            self._server.should_exit = True
            self._server.wake()
        if self._thread is not None:
            self._thread.join(timeout=10)
        for conn in list(fakesnow.server.sessions.values()):
            compat.drop_temporary_tables(conn)  # as a logout would (never raises)
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


# ------------------------------------------------------------------ the shared server process

RECORD_NAME = "server.json"
LOCK_NAME = "server.lock"
LOG_NAME = "server.log"
RUN_LOCK_NAME = "run.lock"
STATUS_PATH = "/_segmentation/status"
STOP_PATH = "/_segmentation/stop"
#: A server.log larger than this is started afresh (the previous one kept as server.log.1).
_LOG_ROTATE_BYTES = 5_000_000


@dataclass(frozen=True)
class ServerHandle:
    """A running embedded warehouse server, as recorded in ``server.json`` and checked alive."""

    path: Path
    host: str
    port: int
    pid: int
    record: dict[str, Any]

    @property
    def secret(self) -> str:
        """The server's secret (from ``server.json``, readable by its owner only)."""
        return str(self.record.get("secret") or "")


def _http(method: str, url: str, timeout: float, secret: str = "") -> dict[str, Any] | None:
    """JSON from a local URL, or None if nothing usable answered (no proxy: it is loopback)."""
    from customer_segmentation.warehouse.embedded_server import SECRET_HEADER

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    request = urllib.request.Request(
        url, method=method, data=b"" if method == "POST" else None, headers={SECRET_HEADER: secret}
    )
    try:
        with opener.open(request, timeout=timeout) as response:
            return json.loads(response.read() or b"{}")
    except (OSError, ValueError):  # refused, timed out, HTTP error (503 while stopping), not JSON
        return None


def read_record(path: Path) -> dict[str, Any] | None:
    """The server record of a warehouse folder, or None when there is none (or it is unreadable)."""
    try:
        record = json.loads((Path(path) / RECORD_NAME).read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    try:  # a zombie (exited, not yet reaped) is not a server
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _is_our_server_process(pid: int, path: Path) -> bool:
    """Whether ``pid`` runs this module's server for ``path`` (its command line says so)."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    text = [a.decode(errors="replace") for a in argv]
    return any(a.endswith("embedded_server") for a in text) and str(path) in text


def _status(record: dict[str, Any], timeout: float) -> dict[str, Any] | None:
    return _http(
        "GET",
        f"http://{record.get('host', '127.0.0.1')}:{record.get('port')}{STATUS_PATH}",
        timeout,
        str(record.get("secret") or ""),
    )


def _check(path: Path, record: dict[str, Any] | None, timeout: float) -> tuple[ServerHandle | None, str]:
    """(handle, "") when the record's server is alive and serves ``path``; else (None, why not)."""
    if record is None:
        return None, "no record"
    if record.get("hostname") not in (None, socket.gethostname()):
        # another machine or container wrote it (a shared volume): its pid means nothing here
        return None, f"recorded by host {record.get('hostname')!r}"
    pid, port = record.get("pid"), record.get("port")
    if not isinstance(pid, int) or not isinstance(port, int):
        return None, "malformed record"
    if not _pid_alive(pid):
        return None, f"process {pid} is gone"
    status = _status(record, timeout)
    if status is None:
        return None, f"process {pid} does not answer on 127.0.0.1:{port}"
    if status.get("path") != str(path) or status.get("pid") != pid:
        return None, f"127.0.0.1:{port} answers for {status.get('path')} (pid {status.get('pid')})"
    return ServerHandle(path, str(record.get("host", "127.0.0.1")), port, pid, record), ""


@contextmanager
def _flock(file: Path, timeout: float, what: str) -> Iterator[int]:
    """An exclusive ``fcntl.flock`` on ``file`` (released by the kernel if this process dies)."""
    fd = os.open(file, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise EmbeddedWarehouseBusyError(
                        f"Timed out after {timeout:g} s waiting for {file} ({what}). Another process holds it: "
                        "see `kedro warehouse status`; `kedro warehouse stop` stops the server (from the "
                        f"project folder; or `python -m customer_segmentation.warehouse stop --path {file.parent}`)."
                    ) from None
                time.sleep(0.02)
        yield fd
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def _start_server(path: Path, memory_limit: str | None, idle_timeout: float, timeout: float) -> ServerHandle:
    """Launch the detached server process and wait until it serves (caller holds the start lock)."""
    log = path / LOG_NAME
    if log.exists() and log.stat().st_size > _LOG_ROTATE_BYTES:
        os.replace(log, path / f"{LOG_NAME}.1")
    command = [
        sys.executable,
        "-m",
        "customer_segmentation.warehouse.embedded_server",
        "--path",
        str(path),
        "--idle-timeout",
        f"{idle_timeout:g}",
    ]
    if memory_limit:
        command += ["--memory-limit", memory_limit]
    # the server never needs Snowflake credentials: keep them out of its environment
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    # the server must run this very package (and its compat patches), whatever the cwd or sys.path
    package_root = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join([package_root, *filter(None, [env.get("PYTHONPATH")])])
    started = time.monotonic()
    with os.fdopen(os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600), "ab") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            cwd=path,
            env=env,
            start_new_session=True,  # detached: outlives this client, not in its signals
        )
    # reap it when it exits (idle stop) so that it does not linger as a zombie of a long-lived client
    threading.Thread(target=process.wait, name="embedded-warehouse-reaper", daemon=True).start()
    deadline = started + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
            raise WarehouseConnectionError(
                f"The embedded warehouse server for {path} exited at start-up (code {process.returncode}). "
                f"Its log ({log}) ends with:\n{tail}"
            )
        record = read_record(path)
        if record is not None and record.get("pid") == process.pid:
            handle, _ = _check(path, record, timeout=5)
            if handle is not None:
                logger.info(
                    "Embedded warehouse server started for %s on 127.0.0.1:%s (pid %s) in %.2f s",
                    path,
                    handle.port,
                    handle.pid,
                    time.monotonic() - started,
                )
                return handle
        time.sleep(0.02)
    process.terminate()
    raise WarehouseConnectionError(
        f"The embedded warehouse server for {path} did not start within {timeout:g} s; see {log}."
    )


def ensure_server(
    path: Path,
    memory_limit: str | None = None,
    idle_timeout: float = 600.0,
    start_timeout: float = 120.0,
) -> ServerHandle:
    """The server of ``path``: the running one if its record checks out, else a new one (race-free)."""
    path = Path(path).resolve()
    _owned_folder(path)
    handle, _ = _check(path, read_record(path), timeout=5)
    if handle is None:
        # slow path, under the start lock: two clients starting at once make one server
        with _flock(path / LOCK_NAME, start_timeout, "the embedded warehouse start-up lock"):
            record = read_record(path)
            handle, why = _check(path, record, timeout=10)
            if handle is None and record is not None:
                pid = record.get("pid")
                if (
                    record.get("hostname") == socket.gethostname()
                    and isinstance(pid, int)
                    and _pid_alive(pid)
                    and _is_our_server_process(pid, path)
                ):
                    raise EmbeddedWarehouseBusyError(
                        f"The embedded warehouse server for {path} (pid {pid}) is running but {why}. "
                        f"Stop it with `kedro warehouse stop` (or `kill {pid}`, `kill -9 {pid}` if it does "
                        f"not exit) and run again; its log is {path / LOG_NAME}."
                    )
                logger.warning(
                    "Removing the stale embedded warehouse record %s (%s)", path / RECORD_NAME, why
                )
                (path / RECORD_NAME).unlink(missing_ok=True)
            if handle is None:
                handle = _start_server(path, memory_limit, idle_timeout, start_timeout)
    _warn_if_different(handle, memory_limit)
    return handle


def _owned_folder(path: Path) -> None:
    """Create the warehouse folder owner-only (0700, whatever the umask); refuse another account's."""
    from customer_segmentation.warehouse.embedded_server import FOLDER_MODE

    path.mkdir(parents=True, exist_ok=True)
    owner = path.stat().st_uid
    if owner != os.getuid() and os.getuid() != 0:
        raise WarehouseConnectionError(
            f"The embedded warehouse folder {path} belongs to another account (uid {owner}): only its "
            "owner may use it. Use a folder of your own (parameter warehouse.embedded_dir)."
        )
    if path.stat().st_mode & 0o777 != FOLDER_MODE:
        os.chmod(path, FOLDER_MODE)


_warned: set[tuple[Any, ...]] = set()


def _warn_if_different(handle: ServerHandle, memory_limit: str | None) -> None:
    from customer_segmentation import __version__

    record = handle.record
    key = (handle.pid, memory_limit, __version__)
    if key in _warned:
        return
    _warned.add(key)
    if record.get("memory_limit") != memory_limit:
        logger.warning(
            "The running embedded warehouse server (pid %s) uses memory_limit %s, not %s: "
            "`kedro warehouse stop` and run again to apply it.",
            handle.pid,
            record.get("memory_limit"),
            memory_limit,
        )
    if record.get("version") != __version__:
        logger.warning(
            "The running embedded warehouse server (pid %s) was started by version %s of the project, "
            "this is %s: `kedro warehouse stop` to restart it with this version.",
            handle.pid,
            record.get("version"),
            __version__,
        )


def is_current(handle: ServerHandle) -> bool:
    """Cheap check (no request) that ``handle`` is still the folder's server: record and pid unchanged."""
    record = read_record(handle.path)
    return (
        record is not None
        and record.get("pid") == handle.pid
        and record.get("port") == handle.port
        and _pid_alive(handle.pid)
    )


def server_status(path: Path) -> dict[str, Any] | None:
    """What the folder's running server reports about itself, or None when none is running."""
    path = Path(path).resolve()
    handle, _ = _check(path, read_record(path), timeout=5)
    return None if handle is None else _status(handle.record, timeout=5)


def stop_server(path: Path, timeout: float = 60.0, wait: bool = True) -> bool:
    """Stop the folder's server (by default waits until its files are released); False if none was running."""
    path = Path(path).resolve()
    handle, why = _check(path, read_record(path), timeout=5)
    if handle is None:
        if read_record(path) is not None:
            with _flock(path / LOCK_NAME, timeout, "the embedded warehouse start-up lock"):
                if _check(path, read_record(path), timeout=5)[0] is None:
                    logger.info("Removing the stale embedded warehouse record (%s)", why)
                    (path / RECORD_NAME).unlink(missing_ok=True)
        return False
    _http("POST", f"http://{handle.host}:{handle.port}{STOP_PATH}", timeout=10, secret=handle.secret)
    if not wait:
        return True
    deadline = time.monotonic() + timeout
    while _pid_alive(handle.pid):
        if time.monotonic() > deadline:
            raise EmbeddedWarehouseBusyError(
                f"The embedded warehouse server (pid {handle.pid}) did not stop within {timeout:g} s "
                f"(a long statement may still be running); see {path / LOG_NAME}."
            )
        time.sleep(0.05)
    logger.info("Embedded warehouse server for %s (pid %s) stopped", path, handle.pid)
    return True


#: How long the connector retries a request the (running) server does not answer, and its login
#: timeout. Retries end at once when the server's process is gone (``retries.retry_policy``), so a
#: stopped or crashed server gives a connection error within seconds, not an hour of retries. Not
#: a limit on a statement's run time: no ``network_timeout`` is set (warehouse/retries.py).
SERVER_RETRY_SECONDS = 20
#: The longest a statement's answer is awaited (the socket's read timeout): Snowflake's default
#: STATEMENT_TIMEOUT_IN_SECONDS, two days (https://docs.snowflake.com/en/sql-reference/parameters).
STATEMENT_WAIT_SECONDS = 172_800


def client_identity() -> dict[str, Any]:
    """The session parameters by which the server watches this process (its pid and start time)."""
    from customer_segmentation.warehouse.embedded_server import (
        CLIENT_PID_PARAMETER,
        CLIENT_START_PARAMETER,
        process_start_time,
    )

    pid = os.getpid()
    return {CLIENT_PID_PARAMETER: pid, CLIENT_START_PARAMETER: process_start_time(pid)}


def server_connection_parameters(handle: ServerHandle, database: str, schema: str) -> dict[str, Any]:
    """Snowpark/connector parameters that reach the server: its secret as password, this process as client.

    The server ends the session when this process exits without logging out; parameters used in
    another process tie that process's session to this one's life.
    """
    from customer_segmentation.warehouse import retries  # imports the connector: only for a session

    return {
        "user": "embedded",
        "password": handle.secret,
        "account": "embedded",
        "host": handle.host,
        "port": handle.port,
        "protocol": "http",
        "database": database,
        "schema": schema,
        # no network_timeout: the connector would cancel every statement running longer than it
        # (retries.py); the retries are bounded by backoff_policy, and end when the server is gone
        "socket_timeout": STATEMENT_WAIT_SECONDS,
        "login_timeout": SERVER_RETRY_SECONDS,
        "backoff_policy": retries.retry_policy(
            SERVER_RETRY_SECONDS,
            alive=lambda: is_current(handle),
            gone_message=f"the embedded warehouse server (pid {handle.pid}) has stopped; see {handle.path / LOG_NAME}",
        ),
        "session_parameters": {"nop_regexes": compat.NOP_REGEXES, **client_identity()},
    }


class RunLock:
    """Exclusive right to run a pipeline on one embedded warehouse (an flock on ``run.lock``).

    Two pipeline runs on the same tables at once would interleave their statements (a staging
    table overwritten by the other run, a watermark read before the other's MERGE): each run
    stays correct only alone. Readers (kedro-viz previews, notebooks) do not take it. The kernel
    releases it if the holder dies, so a crash never leaves it taken.
    """

    def __init__(self, path: Path) -> None:
        self.file = Path(path).resolve() / RUN_LOCK_NAME
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self, timeout: float, label: str) -> None:
        if self._fd is not None:
            return
        self.file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.file, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = os.pread(fd, 4096, 0).decode(errors="replace").strip() or "another process"
                if time.monotonic() > deadline:
                    os.close(fd)
                    raise EmbeddedWarehouseBusyError(
                        f"Another pipeline run is writing to the embedded warehouse at {self.file.parent} "
                        f"({holder}); waited {timeout:g} s. Run again when it has finished (a stopped run "
                        "releases it at once: `kill <pid>` of that run leaves the warehouse consistent), "
                        "or raise warehouse.run_lock_timeout_seconds to wait longer."
                    ) from None
                if not announced:
                    logger.warning(
                        "Waiting for the other pipeline run on this warehouse to finish: %s", holder
                    )
                    announced = True
                time.sleep(0.1)
        owner = f"pid {os.getpid()}, {label}, started {datetime.now(UTC).isoformat(timespec='seconds')}"
        os.ftruncate(fd, 0)
        os.pwrite(fd, owner.encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is None:
            return
        try:
            os.ftruncate(self._fd, 0)
        finally:
            os.close(self._fd)
            self._fd = None
