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

Owner only: the server starts with a random secret, written only to ``server.json`` (0600, in a
0700 folder; the process's umask is 077); every login must give it as password, and the status
and stop endpoints as the ``X-Segmentation-Secret`` header (constant-time compare). Clients of
the project read it through ``embedded.server_connection_parameters``.

Dead clients: each login declares its client's pid and start time; the server watches that
process with a pidfd and, when it exits without logging out, rolls back the session's open
transaction, drops its temporary tables and closes it (``SessionWatch``). Idle, the server does
not wake up: no polling loop, a timer for the idle stop.

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
import gzip
import hmac
import importlib.metadata
import json
import logging
import os
import secrets
import signal
import socket
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

logger = logging.getLogger("customer_segmentation.warehouse.server")

RECORD_NAME = "server.json"
LOCK_NAME = "server.lock"
LOG_NAME = "server.log"
STATUS_PATH = "/_segmentation/status"
STOP_PATH = "/_segmentation/stop"
LOGIN_PATH = "/session/v1/login-request"
UPLOAD_PREFIX = "/fs_bucket/"
#: The connector's cancel (Ctrl-C during a statement, ``SYSTEM$CANCEL_QUERY``'s REST twin)
ABORT_PATH = "/queries/v1/abort-request"
#: Header that carries the secret on the status and stop endpoints (logins carry it as password).
SECRET_HEADER = "x-segmentation-secret"
#: Session parameters a client sends at login so that the server can watch its process.
CLIENT_PID_PARAMETER = "SEGMENTATION_CLIENT_PID"
CLIENT_START_PARAMETER = "SEGMENTATION_CLIENT_START"
#: A session whose client process the server cannot see (another pid namespace) ends after this
#: long without a request, as a Snowflake session without keep-alive does after 4 hours.
SESSION_LEASE_SECONDS = 4 * 3600.0
#: Owner-only modes of the warehouse folder and its files, whatever the umask.
FOLDER_MODE, FILE_MODE = 0o700, 0o600


def secure_folder(path: Path) -> None:
    """Make ``path`` and what it holds readable by its owner only (0700 folders, 0600 files).

    The warehouse holds every customer's data, and ``server.json`` the secret that opens it.
    """
    for folder, dirs, files in os.walk(path):
        os.chmod(folder, FOLDER_MODE)
        for name in files:
            file = Path(folder) / name
            if not file.is_symlink():
                os.chmod(file, FILE_MODE)
        dirs[:] = [d for d in dirs if not (Path(folder) / d).is_symlink()]


def process_start_time(pid: int) -> int | None:
    """A process's start time (clock ticks since boot, /proc/<pid>/stat field 22), or None if not visible.

    With the pid it identifies one process: a pid reused later has another start time.
    """
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def secret_matches(given: str | bytes | None, secret: str) -> bool:
    """Whether ``given`` is the server's secret (constant time: no timing hint about the secret)."""
    if given is None:
        return False
    given_bytes = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(given_bytes, secret.encode())


def login_credentials(body: bytes, content_encoding: str | None) -> tuple[str | None, dict[str, Any]]:
    """(password, session parameters) of a connector login request body."""
    try:
        if content_encoding == "gzip":
            body = gzip.decompress(body)
        data = json.loads(body).get("data") or {}
    except (OSError, ValueError, AttributeError):
        return None, {}
    password = data.get("PASSWORD")
    params = data.get("SESSION_PARAMETERS") or {}
    return (password if isinstance(password, str) else None), (params if isinstance(params, dict) else {})


def request_body_field(body: bytes, content_encoding: str | None, field: str) -> str | None:
    """A top-level string field of a connector request body (JSON, gzip-compressed or not)."""
    try:
        if content_encoding == "gzip":
            body = gzip.decompress(body)
        value = json.loads(body).get(field)
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def query_parameter(scope: dict[str, Any], name: str) -> str | None:
    """One parameter of a request's query string (``requestId``, ...)."""
    from urllib.parse import parse_qs

    values = parse_qs(scope.get("query_string", b"").decode("latin-1")).get(name)
    return values[0] if values else None


async def read_body(receive: Any) -> bytes | None:
    """The whole body of a request, or None when the client went away before sending it all."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def replaying(body: bytes, receive: Any) -> Any:
    """An ASGI ``receive`` that gives ``body`` (already read) first, then defers to ``receive``."""
    sent = False

    async def replay() -> dict[str, Any]:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


def write_record(path: Path, record: dict[str, Any]) -> None:
    """Write ``server.json`` atomically (temporary file + rename): readers never see half a record.

    Created 0600 (it holds the secret): only the owner can read it, whatever the umask.
    """
    target = path / RECORD_NAME
    tmp = path / f".{RECORD_NAME}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
    try:
        os.fchmod(fd, FILE_MODE)
        os.write(fd, json.dumps(record, indent=2, sort_keys=True).encode())
    finally:
        os.close(fd)
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
        #: token -> the requestId of the request that holds the session's lock (the running statement)
        self.running: dict[str, str] = {}
        self.refused = 0

    def idle_for(self) -> float:
        return 0.0 if self.in_flight else time.monotonic() - self.last_activity


@dataclass
class ClientSession:
    """What the server knows of one client session: its process, and how its end is noticed."""

    token: str
    pid: int | None
    opened: float = field(default_factory=time.monotonic)
    opened_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    last_request: float = field(default_factory=time.monotonic)
    watched_by: str = "lease"  # "pid" (pidfd: noticed at once) or "lease" (no request for the lease)
    pidfd: int | None = None
    lease_timer: Any = None


class SessionWatch:
    """Ends the sessions of clients that are gone, as Snowflake ends a session that is closed.

    A local client declares its pid and start time at login; the server checks them against
    /proc and watches the process with a pidfd (readable when the process exits: no polling).
    When it exits without logging out (SIGKILL, OOM kill, a closed laptop), the server interrupts
    the session's running statement, rolls back its open transaction, drops its temporary tables
    and closes its cursor, within milliseconds. A client the server cannot see (another pid
    namespace) gets a lease instead: its session ends after ``lease`` seconds without a request.
    """

    def __init__(self, state: ServerState, lease: float = SESSION_LEASE_SECONDS) -> None:
        self.state = state
        self.lease = lease
        self.clients: dict[str, ClientSession] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        #: (client pid, seconds from the process's exit being noticed to its session closed)
        self.cleanups: list[dict[str, Any]] = []

    def register(self, token: str, params: dict[str, Any]) -> ClientSession:
        """Watch a new session's client (called on the event loop, right after its login)."""
        self.loop = asyncio.get_running_loop()
        pid, start = params.get(CLIENT_PID_PARAMETER), params.get(CLIENT_START_PARAMETER)
        pid = int(pid) if isinstance(pid, (int, str)) and str(pid).isdigit() else None
        client = ClientSession(token, pid)
        self.clients[token] = client
        if pid is not None and start is not None and str(process_start_time(pid)) == str(start):
            try:
                pidfd = os.pidfd_open(pid)
            except (OSError, AttributeError):  # no pidfd (old kernel) or the process just exited
                pidfd = None
            if pidfd is not None and str(process_start_time(pid)) == str(start):
                client.pidfd, client.watched_by = pidfd, "pid"
                self.loop.add_reader(pidfd, self._process_exited, token)
                return client
            if pidfd is not None:  # the pid was reused between the two checks: the client is gone
                os.close(pidfd)
                self.loop.call_soon(self._end_later, token, f"client pid {pid} exited")
                return client
        self._arm_lease(client, self.lease)
        return client

    def touched(self, token: str) -> None:
        client = self.clients.get(token)
        if client is not None:
            client.last_request = time.monotonic()

    def forget(self, token: str) -> None:
        """The session ended (logout, or ended here): stop watching its client."""
        client = self.clients.pop(token, None)
        if client is None:
            return
        if client.pidfd is not None:
            if self.loop is not None:
                self.loop.remove_reader(client.pidfd)
            os.close(client.pidfd)
            client.pidfd = None
        if client.lease_timer is not None:
            client.lease_timer.cancel()

    def _arm_lease(self, client: ClientSession, delay: float) -> None:
        if self.lease > 0 and self.loop is not None:
            client.lease_timer = self.loop.call_later(delay, self._lease_check, client.token)

    def _lease_check(self, token: str) -> None:
        client = self.clients.get(token)
        if client is None:
            return
        quiet = time.monotonic() - client.last_request
        if quiet >= self.lease and token not in self._busy():
            self._end_later(token, f"no request for {self.lease:g} s (lease)")
        else:
            self._arm_lease(client, max(1.0, self.lease - quiet))

    def _busy(self) -> set[str]:
        return {t for t, lock in self.state.session_locks.items() if lock.locked()}

    def _process_exited(self, token: str) -> None:
        client = self.clients.get(token)
        if client is not None and client.pidfd is not None and self.loop is not None:
            self.loop.remove_reader(client.pidfd)
        pid = client.pid if client is not None else None
        self._end_later(token, f"client pid {pid} exited without logging out")

    def _end_later(self, token: str, reason: str) -> None:
        asyncio.ensure_future(self.end_session(token, reason))

    async def end_session(self, token: str, reason: str) -> None:
        """Roll back, drop the temporary tables and close the session of a client that is gone."""
        import fakesnow.server
        from starlette.concurrency import run_in_threadpool

        noticed = time.monotonic()
        client = self.clients.get(token)
        conn = fakesnow.server.sessions.get(token)
        if conn is None:
            self.forget(token)
            return
        try:
            conn._duck_conn.interrupt()  # noqa: SLF001 - a statement it left running stops now
        except Exception:  # noqa: BLE001 - nothing was running
            pass
        lock = self.state.session_locks.setdefault(token, asyncio.Lock())
        async with lock:
            rolled_back, dropped = await run_in_threadpool(_close_abandoned, token, conn)
        self.state.session_locks.pop(token, None)
        self.forget(token)
        elapsed = time.monotonic() - noticed
        pid = client.pid if client is not None else None
        self.cleanups.append({"client_pid": pid, "seconds": round(elapsed, 4), "reason": reason})
        del self.cleanups[:-20]
        logger.info(
            "Ended the session of client pid %s (%s): %s, %d temporary schema(s) dropped, in %.3f s",
            pid,
            reason,
            "open transaction rolled back" if rolled_back else "no open transaction",
            dropped,
            elapsed,
        )

    def describe(self) -> list[dict[str, Any]]:
        """The open sessions for ``status``: client pid, age, idle time, how the client is watched."""
        import fakesnow.server

        from customer_segmentation.warehouse import compat

        now = time.monotonic()
        out = []
        for token, conn in list(fakesnow.server.sessions.items()):
            client = self.clients.get(token)
            out.append(
                {
                    "client_pid": client.pid if client else None,
                    "opened_at": client.opened_at if client else None,
                    "age_seconds": round(now - client.opened, 1) if client else None,
                    "idle_seconds": round(now - client.last_request, 1) if client else None,
                    "watched_by": client.watched_by if client else None,
                    "temporary_tables": len(compat.temporary_tables(conn)),
                }
            )
        return out

    def close(self) -> None:
        for token in list(self.clients):
            self.forget(token)


def _close_abandoned(token: str, conn: Any) -> tuple[bool, int]:
    """End a session whose client is gone: ROLLBACK (if a transaction is open), drop its temporary
    tables (the logout path of emulator patch 11), close its cursor. Returns (rolled back, dropped)."""
    import fakesnow.server

    from customer_segmentation.warehouse import compat

    rolled_back = False
    try:
        conn._duck_conn.execute("ROLLBACK")  # noqa: SLF001
        rolled_back = True
    except Exception:  # noqa: BLE001 - no transaction was open
        pass
    dropped = len({shadow for shadow in compat.temporary_tables(conn).values()})
    try:
        del fakesnow.server.sessions[token]  # drops the session's temporary tables
    except KeyError:
        pass
    try:
        conn.close()
    except Exception:  # noqa: BLE001 - the cursor may be closed already
        pass
    return rolled_back, dropped


def _refusal(message: str, code: str = "390100", status_code: int = 200) -> Any:
    """A login-style refusal: the connector raises it as an error with this message and code."""
    from starlette.responses import JSONResponse

    return JSONResponse(
        {"data": None, "code": code, "message": message, "success": False, "headers": None},
        status_code=status_code,
    )


class SegmentationServerApp:
    """ASGI wrapper around fakesnow's app: owner-only access, activity tracking, per-session
    serialisation, client watch, status and stop."""

    def __init__(  # noqa: PLR0913 - the parts of one server
        self,
        inner: Any,
        state: ServerState,
        status: Any,
        request_stop: Any,
        secret: str,
        upload_key: str,
        watch: SessionWatch | None = None,
        path: Path | None = None,
    ) -> None:
        self.inner = inner
        self.state = state
        self.status = status
        self.request_stop = request_stop
        self.secret = secret
        self.upload_key = upload_key
        self.watch = watch
        self.where = f" (its folder {path})" if path else ""

    def _refused(self, what: str) -> Any:
        self.state.refused += 1
        logger.warning("Refused %s: wrong or missing secret", what)
        return _refusal(
            f"The embedded warehouse refused {what}: wrong or missing secret. Only the account that "
            f"started the server may use it; the project's clients read the secret from server.json"
            f"{self.where}, which only that account can read. Connect through customer_segmentation."
            "warehouse (kedro run, kedro viz, kedro jupyter), or run `kedro warehouse stop` and retry "
            "if that file was replaced.",
            status_code=401 if what != "the login" else 200,
        )

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:  # noqa: PLR0912
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
            headers = dict(scope.get("headers", []))
            if path in (STATUS_PATH, STOP_PATH):
                if not secret_matches(headers.get(SECRET_HEADER.encode()), self.secret):
                    await self._refused("a status request" if path == STATUS_PATH else "a stop request")(
                        scope, receive, send
                    )
                    return
                if path == STATUS_PATH and self.status is not None:
                    response = JSONResponse(self.status(), status_code=503 if state.stopping else 200)
                    await response(scope, receive, send)
                    return
                if path == STOP_PATH and scope.get("method") == "POST" and self.request_stop is not None:
                    await JSONResponse({"stopping": True})(scope, receive, send)
                    self.request_stop("stop requested by a client")
                    return
                await JSONResponse({"success": False}, status_code=404)(scope, receive, send)
                return
            if state.stopping:
                await _refusal("The embedded warehouse is stopping; reconnect.", "390400", 503)(
                    scope, receive, send
                )
                return
            if path == LOGIN_PATH:
                await self._login(scope, receive, send, headers)
                return
            if path.startswith(UPLOAD_PREFIX):
                query = scope.get("query_string", b"").decode("latin-1")
                given = dict(p.partition("=")[::2] for p in query.split("&") if p).get("key")
                if not secret_matches(given, self.upload_key):
                    await self._refused("an upload")(scope, receive, send)
                    return
                await self.inner(scope, receive, send)
                return
            import fakesnow.server

            token = _token(scope)
            conn = fakesnow.server.sessions.get(token) if token is not None else None
            if conn is None:
                # no valid session token: nothing but a login reaches the emulator
                await _refusal(
                    "Not logged in to the embedded warehouse (no or unknown session token): log in first.",
                    "390104",
                    401,
                )(scope, receive, send)
                return
            assert token is not None
            if self.watch is not None:
                self.watch.touched(token)
            # The whole body first, then the session's lock: a client interrupted while sending
            # (Ctrl-C in the middle of a request) must not hold the lock with a request that never ends.
            body = await read_body(receive)
            if body is None:
                return
            encoding = headers.get(b"content-encoding", b"").decode("latin-1") or None
            if path == ABORT_PATH:
                # Not behind the lock (it is held by the statement to cancel): stop that statement now.
                self._cancel(token, conn, request_body_field(body, encoding, "requestId"))
                await JSONResponse({"data": None, "success": True})(scope, receive, send)
                return
            lock = state.session_locks.setdefault(token, asyncio.Lock())
            async with lock:
                request_id = query_parameter(scope, "requestId")
                if request_id is not None:
                    state.running[token] = request_id
                try:
                    await self.inner(scope, replaying(body, receive), send)
                finally:
                    state.running.pop(token, None)
            if token not in fakesnow.server.sessions:
                # a logout: fakesnow forgets the session but leaves its DuckDB cursor open
                state.session_locks.pop(token, None)
                if self.watch is not None:
                    self.watch.forget(token)
                try:
                    conn.close()
                except Exception:  # noqa: BLE001 - the cursor may be closed already
                    logger.debug("session cursor already closed")
        finally:
            state.in_flight -= 1
            state.last_activity = time.monotonic()

    def _cancel(self, token: str, conn: Any, request_id: str | None) -> None:
        """Cancel the statement of request ``request_id`` if it is the one the session is running
        (Snowflake cancels that query and nothing else; a request already finished is left alone)."""
        running = self.state.running.get(token)
        if request_id is None or running != request_id:
            return
        try:
            conn._duck_conn.interrupt()  # noqa: SLF001 - DuckDB stops the statement and rolls it back
        except Exception:  # noqa: BLE001 - the statement ended in the meantime
            return
        logger.info("Cancelled the running statement of request %s (client abort request)", request_id)

    async def _login(
        self, scope: dict[str, Any], receive: Any, send: Any, headers: dict[bytes, bytes]
    ) -> None:
        """Check the secret (the login's password), then let fakesnow log in and watch the client."""
        body = await read_body(receive)
        if body is None:
            return
        encoding = headers.get(b"content-encoding", b"").decode("latin-1") or None
        password, params = login_credentials(body, encoding)
        if not secret_matches(password, self.secret):
            await self._refused("the login")(scope, receive, send)
            return
        replay = replaying(body, receive)

        answer: list[bytes] = []

        async def capture(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.body":
                answer.append(message.get("body", b""))
            await send(message)

        await self.inner(scope, replay, capture)
        if self.watch is None:
            return
        try:
            token = (json.loads(b"".join(answer)).get("data") or {}).get("token")
        except (ValueError, AttributeError):
            token = None
        if token:
            self.watch.register(token, params)


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


class _Server:
    """uvicorn's server without its 10-per-second tick: the main loop sleeps until told to stop.

    uvicorn's own loop wakes every 0.1 s (to refresh the Date header and check for exit), which
    was most of an idle server's CPU. Here a stop (signal, request, idle timer) sets an event.
    """

    @staticmethod
    def make(config: Any, on_started: Any) -> Any:
        import uvicorn

        class Server(uvicorn.Server):
            def __init__(self) -> None:
                super().__init__(config)
                self.loop: asyncio.AbstractEventLoop | None = None
                self.wake_event: asyncio.Event | None = None

            async def main_loop(self) -> None:
                self.loop = asyncio.get_running_loop()
                self.wake_event = asyncio.Event()
                await self.on_tick(0)  # the default headers, once
                on_started(self.loop)
                while not self.should_exit:
                    await self.wake_event.wait()
                    self.wake_event.clear()

            async def shutdown(self, sockets: list[Any] | None = None) -> None:
                if self.server_state.connections or self.server_state.tasks:
                    await super().shutdown(sockets)
                    return
                # nobody connected: uvicorn's shutdown without its 0.1 s grace for open connections
                for server in self.servers:
                    server.close()
                for sock in sockets or []:
                    sock.close()
                if not self.force_exit:
                    await self.lifespan.shutdown()

            def wake(self) -> None:
                loop, event = self.loop, self.wake_event
                if loop is not None and event is not None and not loop.is_closed():
                    loop.call_soon_threadsafe(event.set)

            def handle_exit(self, sig: int, frame: Any) -> None:
                # as uvicorn's, without noting the signal: uvicorn raises noted signals again once
                # it has shut down, which killed the process before it closed DuckDB and removed
                # its record (the ``finally`` of ``serve``)
                if self.should_exit and sig == signal.SIGINT:
                    self.force_exit = True
                else:
                    self.should_exit = True
                self.wake()

        return Server()


def _patch_upload_url(upload_key: str) -> None:
    """Presigned upload URLs (PUT of ``write_pandas``) carry a key the server checks: no upload without it."""
    import fakesnow.server as fs_server

    original = fs_server.gcs_stage_info
    if getattr(original, "_segmentation_patch", False):
        return

    def gcs_stage_info(*args: Any, **kwargs: Any) -> dict[str, Any]:
        info = original(*args, **kwargs)
        info["presignedUrl"] = f"{info['presignedUrl']}?key={upload_key}"
        return info

    gcs_stage_info._segmentation_patch = True  # type: ignore[attr-defined]
    fs_server.gcs_stage_info = gcs_stage_info


def _import_connector_without_pandas() -> None:
    """Import the Snowflake connector (fakesnow imports it) without its optional pandas: about 0.15 s
    of CPU less per server start (0.95 -> 0.80 s, measured over 6 start/stop cycles).

    The connector probes pandas at import (``snowflake.connector.options``) for its client-side
    DataFrame helpers; this process only serves requests (Arrow results, DuckDB COPY) and never
    uses them. The probe alone is made to miss: pandas stays importable afterwards, should any
    code of this process ask for it. The probe's one side effect is kept: with pandas found, it
    sets pyarrow's default memory pool to the system allocator.
    """
    if "snowflake.connector" in sys.modules or "pandas" in sys.modules:
        return
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
    sys.modules["pandas"] = None  # type: ignore[assignment] - makes `import pandas` fail
    try:
        import snowflake.connector  # noqa: F401
    finally:
        del sys.modules["pandas"]


def configure_duckdb(conn: Any, path: Path, memory_limit: str | None) -> None:
    """The embedded warehouse's DuckDB settings, in the shared server and in the in-process emulator.

    DuckDB runs in the serving process: its memory is capped (it spills beyond, to ``path/.tmp``,
    not to whatever directory the first client ran from). ``memory_limit`` is validated
    (``validate_memory_limit``). DuckDB's checkpoint threshold (16 MiB of write-ahead log) is kept:
    committed appends that are not checkpointed stay in DuckDB's memory, and with 128 MiB or 1 GiB
    a `daily` at 100M events ran out of the 640MB cap (docs/embedded-warehouse.md, "Checkpoints").
    """
    conn.execute(f"SET temp_directory = '{(path / '.tmp').as_posix()}'")
    if memory_limit:
        conn.execute(f"SET memory_limit = '{memory_limit}'")


def serve(  # noqa: PLR0915
    path: Path, memory_limit: str | None, idle_timeout: float, session_lease: float = SESSION_LEASE_SECONDS
) -> int:
    """Run the server until idle, stopped or signalled; returns the process exit code."""
    from customer_segmentation.gc_tuning import tune_garbage_collector
    from customer_segmentation.malloc_tuning import tune_allocator

    # it parses and rewrites every statement (sqlglot): the collector in large batches (gc_tuning.py)
    tune_garbage_collector()
    # result pages and Arrow buffers of MiBs: freed back to the system, not kept in the heap (malloc_tuning.py)
    tune_allocator()
    # everything this process creates (DuckDB files, WAL, spill files, log, record) is the owner's only
    os.umask(0o077)
    path = path.resolve()
    path.mkdir(parents=True, exist_ok=True)
    secure_folder(path)
    _setup_logging(path)
    _import_connector_without_pandas()
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
    configure_duckdb(instance.duck_conn, path, memory_limit)
    fakesnow.server.shared_fs = instance
    # fakesnow logs each login and failed statement at INFO (clients get the errors themselves)
    logging.getLogger("fakesnow.server").setLevel(logging.WARNING)
    fakesnow.server.sessions.clear()
    secret, upload_key = secrets.token_urlsafe(32), secrets.token_urlsafe(24)
    _patch_upload_url(upload_key)

    state = ServerState(idle_timeout)
    watch = SessionWatch(state, session_lease)
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
            limit, spill, checkpoint = cur.execute(
                "SELECT current_setting('memory_limit'), current_setting('temp_directory'), "
                "current_setting('checkpoint_threshold')"
            ).fetchone()
        finally:
            cur.close()
        return {
            **record,  # never the secret: it is in server.json only
            "open_sessions": len(fakesnow.server.sessions),
            "sessions": watch.describe(),
            "ended_abandoned_sessions": list(watch.cleanups),
            "refused_requests": state.refused,
            "in_flight": state.in_flight - 1,  # not counting this status request
            "requests": state.requests,
            "idle_seconds": round(time.monotonic() - state.last_activity, 3),
            "duckdb_memory_limit": limit,
            "duckdb_temp_directory": spill,
            "duckdb_checkpoint_threshold": checkpoint,
            "stopping": state.stopping,
        }

    server: Any = None
    lock_fd = os.open(path / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)

    def request_stop(reason: str) -> None:
        """Stop serving, after taking the start lock: no client is then checking or starting."""

        def stop() -> None:
            fcntl.flock(lock_fd, fcntl.LOCK_EX)  # a no-op when this process holds it already
            if state.stopping:
                return
            state.stopping, state.stop_reason = True, reason
            logger.info("Stopping: %s", reason)
            server.should_exit = True
            server.wake()

        threading.Thread(target=stop, name="stop", daemon=True).start()

    def on_started(loop: asyncio.AbstractEventLoop) -> None:
        """Serving: write the record (with the secret, 0600), arm the idle timer (no polling)."""
        write_record(path, {**record, "secret": secret})
        logger.info(
            "Serving %s on 127.0.0.1:%s (pid %s, memory_limit %s, idle timeout %ss)",
            path,
            port,
            os.getpid(),
            memory_limit,
            idle_timeout,
        )
        if idle_timeout > 0:
            loop.call_later(idle_timeout, idle_check)

    def idle_check() -> None:
        """Runs when the idle timeout may have passed; re-arms itself for the time left otherwise."""
        if state.stopping or server.loop is None:
            return
        idle = state.idle_for()
        if idle < idle_timeout:
            server.loop.call_later(idle_timeout - idle if not state.in_flight else idle_timeout, idle_check)
            return
        # a client holding the start lock is checking or reaching us right now: not idle
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            server.loop.call_later(1.0, idle_check)
            return
        # keep the start lock until the process exits (the kernel releases it)
        request_stop(f"no client request for {idle_timeout:g} s")

    app = SegmentationServerApp(
        fakesnow.server.app, state, status, request_stop, secret, upload_key, watch, path
    )
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_keep_alive=30,
        date_header=False,  # uvicorn refreshes it every second; no client needs it
    )
    server = _Server.make(config, on_started)
    # uvicorn turns SIGTERM/SIGINT into should_exit; SIGHUP (terminal closed) must not kill us silently
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        server.run(sockets=[sock])
    finally:
        state.stopping = True
        # hold the start lock while the files are released: a client that wants a new server
        # waits until this process no longer holds DuckDB's file locks. Not when no request was
        # ever answered: the lock is then (most likely) held by the client that started this server,
        # which waits for it to answer, and would wait until its start timeout (120 s) while this
        # process waited for the lock. That client watches this process and says it exited.
        try:
            fcntl.flock(lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if state.requests:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
            else:
                logger.info(
                    "Stopping before any request: not waiting for the start lock (its starting client holds it)"
                )
        remove_record_if_ours(path, os.getpid())
        watch.close()
        for conn in list(fakesnow.server.sessions.values()):
            try:
                conn._duck_conn.execute("ROLLBACK")  # noqa: SLF001 - an open transaction ends with its session
            except Exception:  # noqa: BLE001 - none was open
                pass
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
    parser.add_argument(
        "--session-lease",
        type=float,
        default=SESSION_LEASE_SECONDS,
        help="end a session whose client process is not visible after this many seconds without a request",
    )
    args = parser.parse_args(argv)
    return serve(args.path, args.memory_limit or None, args.idle_timeout, args.session_lease)


if __name__ == "__main__":
    from customer_segmentation.warehouse import compat

    code = main()
    compat.remove_stage_bucket()  # os._exit below skips atexit (compat patch 12)
    logging.shutdown()
    sys.stderr.flush()
    # DuckDB is closed and checkpointed by now; skipping interpreter finalisation avoids the
    # "nanobind: leaked ..." report DuckDB's bindings print at exit (noise, not a real leak)
    os._exit(code)
