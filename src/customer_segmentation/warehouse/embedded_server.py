"""The embedded warehouse server process: fakesnow (Snowflake's HTTP API over DuckDB), shared by clients.

Started on demand by the first client (``embedded.ensure_server``) as a detached process::

    python -m customer_segmentation.warehouse.embedded_server --path data/warehouse \
        --memory-limit 768MB --idle-timeout 600

It opens the DuckDB files under ``--path`` once (DuckDB allows one process per file), listens on
a free 127.0.0.1 port and records its address and owner in ``<path>/server.json``. Every
``kedro run``, ``kedro viz``, notebook kernel and test of the project then talks to this one
process, so writes from one client are visible to the others. It stops by itself after
``--idle-timeout`` seconds without any request, on ``POST /_segmentation/stop`` (``kedro
warehouse stop``) and on SIGTERM/SIGINT; each way it closes DuckDB (checkpoint) and removes its
record while holding ``<path>/server.lock``, so that a client starting a new server at that moment
waits until the files are free.

Concurrency (fakesnow 0.12.1): every login gets its own DuckDB cursor (a connection of the one
database instance), and statements run in Starlette's thread pool. DuckDB connections are safe to
use from different threads, but one connection must not run two statements at once, and fakesnow
keeps per-session state (last statement, current schema) on that cursor: requests of one session
are therefore serialised here, requests of different sessions run in parallel (DuckDB's MVCC gives
each statement a consistent snapshot). Two writers of the same table are serialised one level up,
by the run lock clients take for a pipeline run (``embedded.run_lock``).
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import getpass
import importlib.metadata
import json
import logging
import os
import signal
import socket
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger("customer_segmentation.warehouse.server")

RECORD_NAME = "server.json"
LOCK_NAME = "server.lock"
LOG_NAME = "server.log"
STATUS_PATH = "/_segmentation/status"
STOP_PATH = "/_segmentation/stop"


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write ``server.json`` atomically (temporary file + rename): readers never see half a record."""
    target = path / RECORD_NAME
    tmp = path / f".{RECORD_NAME}.{os.getpid()}.tmp"
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True))
    os.replace(tmp, target)


def remove_record_if_ours(path: Path, pid: int) -> None:
    """Delete ``server.json`` only when it describes process ``pid`` (never a successor's record)."""
    target = path / RECORD_NAME
    try:
        if json.loads(target.read_text()).get("pid") == pid:
            target.unlink()
    except (OSError, ValueError):
        pass


class ServerState:
    """Activity bookkeeping for the idle stop, and the per-session request locks."""

    def __init__(self, idle_timeout: float) -> None:
        self.idle_timeout = idle_timeout
        self.last_activity = time.monotonic()
        self.in_flight = 0
        self.requests = 0
        self.stopping = False
        self.stop_reason = ""
        self.session_locks: dict[str, asyncio.Lock] = {}

    def idle_for(self) -> float:
        return 0.0 if self.in_flight else time.monotonic() - self.last_activity


class SegmentationServerApp:
    """ASGI wrapper around fakesnow's app: activity tracking, per-session serialisation, status, stop."""

    def __init__(self, inner: Any, state: ServerState, status: Any, request_stop: Any) -> None:
        self.inner = inner
        self.state = state
        self.status = status
        self.request_stop = request_stop

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        from starlette.responses import JSONResponse

        state = self.state
        state.in_flight += 1
        state.requests += 1
        state.last_activity = time.monotonic()
        try:
            path = scope.get("path", "")
            if path == STATUS_PATH:
                response = JSONResponse(self.status(), status_code=503 if state.stopping else 200)
                await response(scope, receive, send)
                return
            if path == STOP_PATH and scope.get("method") == "POST":
                await JSONResponse({"stopping": True})(scope, receive, send)
                self.request_stop("stop requested by a client")
                return
            if state.stopping:
                await JSONResponse(
                    {
                        "success": False,
                        "code": "390400",
                        "message": "The embedded warehouse is stopping; reconnect.",
                    },
                    status_code=503,
                )(scope, receive, send)
                return
            token = _token(scope)
            if token is None:
                await self.inner(scope, receive, send)
                return
            import fakesnow.server

            conn = fakesnow.server.sessions.get(token)
            lock = state.session_locks.setdefault(token, asyncio.Lock())
            async with lock:
                await self.inner(scope, receive, send)
            if conn is not None and token not in fakesnow.server.sessions:
                # a logout: fakesnow forgets the session but leaves its DuckDB cursor open
                state.session_locks.pop(token, None)
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - the cursor may be closed already
                    logger.debug("session cursor already closed")
        finally:
            state.in_flight -= 1
            state.last_activity = time.monotonic()


def _token(scope: dict[str, Any]) -> str | None:
    """The session token of a request (the connector sends ``Snowflake Token="<token>"``)."""
    for name, value in scope.get("headers", []):
        if name == b"authorization":
            text = value.decode("latin-1")
            return text[17:-1] if text.startswith('Snowflake Token="') else None
    return None


def _setup_logging(path: Path) -> None:
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s [pid %(process)d] %(name)s: %(message)s",
        stream=sys.stderr,  # the launcher points stderr at <path>/server.log
    )
    import warnings

    warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")


def _project_version() -> str:
    from customer_segmentation import __version__

    return __version__


def serve(path: Path, memory_limit: str | None, idle_timeout: float) -> int:  # noqa: PLR0915
    """Run the server until idle, stopped or signalled; returns the process exit code."""
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    _setup_logging(path)
    from customer_segmentation.warehouse import compat

    # every emulator patch acts on fakesnow's server side (SQL transforms, Arrow encoding, COPY,
    # error mapping, login answer): they must live in this process
    compat.apply()
    import duckdb
    import fakesnow.instance
    import fakesnow.server
    import uvicorn

    try:
        instance = fakesnow.instance.FakeSnow(db_path=str(path))
    except duckdb.Error as exc:  # pragma: no cover - FakeSnow opens an in-memory database only
        logger.error("Could not create the emulator: %s", exc)
        return 2
    # DuckDB runs in this process: cap its memory (it spills beyond) and keep the spill files next
    # to the warehouse, not in whatever directory the first client ran from
    instance.duck_conn.execute(f"SET temp_directory = '{(path / '.tmp').as_posix()}'")
    if memory_limit:
        instance.duck_conn.execute(f"SET memory_limit = '{memory_limit}'")
    fakesnow.server.shared_fs = instance
    # fakesnow logs each login and failed statement at INFO (clients get the errors themselves)
    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)
    fakesnow.server.sessions.clear()

    state = ServerState(idle_timeout)
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))  # the kernel picks a free port: no race with another process
    port = int(sock.getsockname()[1])
    record = {
        "pid": os.getpid(),
        "host": "127.0.0.1",
        "port": port,
        "path": str(path),
        "hostname": socket.gethostname(),
        "user": getpass.getuser(),
        "started_at": started_at,
        "version": _project_version(),
        "fakesnow": importlib.metadata.version("fakesnow"),
        "duckdb": duckdb.__version__,
        "memory_limit": memory_limit,
        "idle_timeout_seconds": idle_timeout,
        "python": sys.executable,
    }

    def status() -> dict[str, Any]:
        cur = instance.duck_conn.cursor()
        try:
            limit, spill = cur.execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory')"
            ).fetchone()
        finally:
            cur.close()
        return {
            **record,
            "open_sessions": len(fakesnow.server.sessions),
            "in_flight": state.in_flight - 1,  # not counting this status request
            "requests": state.requests,
            "idle_seconds": round(time.monotonic() - state.last_activity, 3),
            "duckdb_memory_limit": limit,
            "duckdb_temp_directory": spill,
            "stopping": state.stopping,
        }

    server: Any = None
    lock_fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o644)

    def request_stop(reason: str) -> None:
        """Stop serving, after taking the start lock: no client is then checking or starting."""

        def stop() -> None:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a no-op when this process holds it already
            if state.stopping:
                return
            state.stopping, state.stop_reason = True, reason
            logger.info("Stopping: %s", reason)
            server.should_exit = True

        threading.Thread(target=stop, name="stop", daemon=True).start()

    app = SegmentationServerApp(fakesnow.server.app, state, status, request_stop)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", timeout_keep_alive=30)
    server = uvicorn.Server(config)

    def watch() -> None:
        """Write the record once serving; then stop after ``idle_timeout`` s without a request."""
        while not server.started and not server.should_exit:
            time.sleep(0.01)
        if server.should_exit:
            return
        write_record(path, record)
        logger.info(
            "Serving %s on 127.0.0.1:%s (pid %s, memory_limit %s, idle timeout %ss)",
            path,
            port,
            os.getpid(),
            memory_limit,
            idle_timeout,
        )
        while not state.stopping:
            time.sleep(min(1.0, max(0.05, idle_timeout / 10)))
            if idle_timeout > 0 and state.idle_for() >= idle_timeout:
                # a client holding the start lock is checking or reaching us right now: not idle
                try:
                    fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue
                if state.idle_for() >= idle_timeout:
                    # keep the start lock until the process exits (the kernel releases it)
                    request_stop(f"no client request for {idle_timeout:g} s")
                    return
                fcntl.flock(lock_fd, fcntl.LOCK_UN)

    watcher = threading.Thread(target=watch, name="idle-watch", daemon=True)
    watcher.start()
    # uvicorn turns SIGTERM/SIGINT into should_exit; SIGHUP (terminal closed) must not kill us silently
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        server.run(sockets=[sock])
    finally:
        state.stopping = True
        # hold the start lock while the files are released: a client that wants a new server
        # waits until this process no longer holds DuckDB's file locks
        fcntl.flock(lock_fd, fcntl.LOCK_EX)
        remove_record_if_ours(path, os.getpid())
        for conn in list(fakesnow.server.sessions.values()):
            compat.drop_temporary_tables(conn)  # as a logout would (never raises)
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing must go on
                pass
        fakesnow.server.sessions.clear()
        try:
            instance.duck_conn.execute("CHECKPOINT")
        except Exception as exc:  # noqa: BLE001 - a checkpoint is an optimisation (the WAL is durable)
            logger.debug("checkpoint skipped: %s", exc)
        instance.duck_conn.close()
        logger.info("Stopped (%s)", state.stop_reason or "signal")
        os.close(lock_fd)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--path", required=True, type=Path, help="the warehouse folder (DuckDB files)")
    parser.add_argument("--memory-limit", default=None, help="DuckDB memory cap, e.g. 768MB")
    parser.add_argument(
        "--idle-timeout", type=float, default=600.0, help="stop after this many idle seconds (0: never)"
    )
    args = parser.parse_args(argv)
    return serve(args.path, args.memory_limit or None, args.idle_timeout)


if __name__ == "__main__":
    code = main()
    logging.shutdown()
    sys.stderr.flush()
    # DuckDB is closed and checkpointed by now; skipping interpreter finalisation avoids the
    # "nanobind: leaked ..." report DuckDB's bindings print at exit (noise, not a real leak)
    os._exit(code)
