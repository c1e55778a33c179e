"""The shared server's sessions and owner: session-scoped temporary tables, dead clients, the secret.

Clients are separate processes (as `kedro run`, `kedro viz` and a notebook kernel are). What is
checked: two clients hold temporary tables of the same name at once, each seeing its own; a
client killed with SIGKILL has its session ended by the server within seconds (its transaction
rolled back, its temporary tables dropped); a login or a stop without the secret is refused; the
folder and its files are the owner's only, whatever the umask; an idle server does not wake up.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from customer_segmentation import warehouse
from customer_segmentation.warehouse import embedded
from customer_segmentation.warehouse.config import WarehouseSettings
from tests.conftest import wait_gone

SRC = Path(__file__).resolve().parents[2] / "src"

#: A client that holds a temporary table, a transaction and (``long``) a running statement.
HOLDER = """
import sys, time
from pathlib import Path
from customer_segmentation import warehouse
from customer_segmentation.warehouse.config import WarehouseSettings

path, mode = Path(sys.argv[1]), sys.argv[2]
warehouse.configure(WarehouseSettings.from_credentials({}, path))
session = warehouse.get_session()
session.sql("CREATE TABLE IF NOT EXISTS KEPT (N INT)").collect()
session.sql("CREATE TEMPORARY TABLE INGESTION_TYPED (N INT)").collect()
session.sql("INSERT INTO INGESTION_TYPED VALUES (1)").collect()
session.sql("BEGIN").collect()
session.sql("INSERT INTO KEPT VALUES (1)").collect()
print("READY", flush=True)
if mode == "long":
    session.sql("SELECT COUNT(*) FROM TABLE(GENERATOR(ROWCOUNT => 1000000000000))").collect()
time.sleep(600)
"""

#: A client that creates a temporary table, waits until the other client has created its own, reads.
TWIN = """
import json, sys, time
from pathlib import Path
from customer_segmentation import warehouse
from customer_segmentation.warehouse.config import WarehouseSettings

path, me, other = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
warehouse.configure(WarehouseSettings.from_credentials({}, path))
session = warehouse.get_session()
session.sql(f"CREATE OR REPLACE TEMPORARY TABLE INGESTION_TYPED AS SELECT '{me}' AS WHO").collect()
(path.parent / f"created-{me}").touch()
deadline = time.monotonic() + 60
while not (path.parent / f"created-{other}").exists() and time.monotonic() < deadline:
    time.sleep(0.02)
rows = [r[0] for r in session.sql("SELECT WHO FROM SEGMENTATION.PUBLIC.INGESTION_TYPED").collect()]
session.sql("INSERT INTO INGESTION_TYPED SELECT WHO || '2' FROM INGESTION_TYPED").collect()
rows2 = sorted(r[0] for r in session.table("INGESTION_TYPED").collect())
print(json.dumps({"rows": rows, "after_insert": rows2}))
warehouse.close()
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """One warehouse (one server) for the module; stopped at the end."""
    path = tmp_path_factory.mktemp("sessions") / "wh"
    embedded.ensure_server(path)
    yield path
    warehouse.close()
    embedded.stop_server(path)


def _open_sessions(path: Path) -> list[dict[str, Any]]:
    status = embedded.server_status(path)
    assert status is not None
    return status["sessions"]


def test_two_clients_hold_temporary_tables_of_the_same_name_in_parallel(folder: Path) -> None:
    run = lambda me, other: subprocess.run(  # noqa: E731
        [sys.executable, "-c", TWIN, str(folder), me, other],
        capture_output=True,
        text=True,
        timeout=180,
        env=_env(),
    )
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda pair: run(*pair), [("a", "b"), ("b", "a")])
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    # each saw its own table, fully qualified or not, after the other had created its own
    assert json.loads(first.stdout.splitlines()[-1]) == {"rows": ["a"], "after_insert": ["a", "a2"]}
    assert json.loads(second.stdout.splitlines()[-1]) == {"rows": ["b"], "after_insert": ["b", "b2"]}
    assert not [s for s in _open_sessions(folder) if s["client_pid"] != os.getpid()]


@pytest.mark.parametrize("mode", ["idle", "long"])
def test_a_killed_client_is_cleaned_up_within_seconds(folder: Path, mode: str) -> None:
    """SIGKILL (no logout): the server rolls back, drops its temporary tables, ends the session."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(folder), mode], stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "READY"
        time.sleep(0.5 if mode == "long" else 0)  # its endless statement is running
        (listed,) = [s for s in _open_sessions(folder) if s["client_pid"] == holder.pid]
        assert listed["watched_by"] == "pid" and listed["temporary_tables"] == 1
        assert listed["age_seconds"] >= 0 and listed["opened_at"]
    finally:
        holder.kill()
        holder.wait()
    killed = time.monotonic()
    while True:
        status = embedded.server_status(folder)
        assert status is not None
        ended = [e for e in status["ended_abandoned_sessions"] if e["client_pid"] == holder.pid]
        if ended and not any(s["client_pid"] == holder.pid for s in status["sessions"]):
            break
        assert time.monotonic() - killed < 5, "the dead client's session is still open"
        time.sleep(0.01)
    assert len(ended) == 1 and ended[0]["seconds"] < 5
    # its transaction was rolled back, its temporary table dropped: the same name is free for a new
    # session with no step in between (Snowflake's session scope), and it is empty there
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    session = warehouse.get_session()
    try:
        assert session.sql("SELECT COUNT(*) FROM KEPT").collect()[0][0] == 0
        session.sql("CREATE TEMPORARY TABLE INGESTION_TYPED (N INT)").collect()
        assert session.table("INGESTION_TYPED").count() == 0
    finally:
        warehouse.close()


def test_a_login_without_the_secret_is_refused(folder: Path) -> None:
    from snowflake.snowpark import Session

    handle = embedded.ensure_server(folder)
    params = embedded.server_connection_parameters(handle, "SEGMENTATION", "PUBLIC")
    assert params["password"] == handle.secret and len(handle.secret) >= 40
    refused_before = embedded.server_status(folder)["refused_requests"]
    for wrong in ("wrong", handle.secret[:-1], ""):
        with pytest.raises(Exception, match="refused the login: wrong or missing secret") as info:
            Session.builder.configs({**params, "user": "intruder", "password": wrong or "x"}).create()
        assert "server.json" in str(info.value)
    assert embedded.server_status(folder)["refused_requests"] == refused_before + 3
    # nothing but a login reaches the emulator without a session token
    answer = embedded._http("POST", f"http://127.0.0.1:{handle.port}/queries/v1/query-request", 5)  # noqa: SLF001
    assert answer is None  # HTTP 401
    # the status endpoint shows no secret to anyone
    assert handle.secret not in json.dumps(embedded.server_status(folder))


def test_a_connection_without_the_secret_cannot_stop_the_server(folder: Path) -> None:
    handle = embedded.ensure_server(folder)
    base = f"http://127.0.0.1:{handle.port}"
    assert embedded._http("POST", base + embedded.STOP_PATH, 5) is None  # noqa: SLF001
    assert embedded._http("POST", base + embedded.STOP_PATH, 5, secret="guess") is None  # noqa: SLF001
    assert embedded._http("GET", base + embedded.STATUS_PATH, 5) is None  # noqa: SLF001
    time.sleep(0.3)
    assert embedded._pid_alive(handle.pid) and embedded.server_status(folder) is not None  # noqa: SLF001
    # an upload (write_pandas' PUT) without the server's key is refused too
    assert embedded._http("PUT", base + "/fs_bucket/x/y.parquet", 5) is None  # noqa: SLF001


OWNER_RUN = """
import os, sys
from pathlib import Path
os.umask(0o022)
from customer_segmentation import warehouse
from customer_segmentation.warehouse.config import WarehouseSettings

warehouse.configure(WarehouseSettings.from_credentials({}, Path(sys.argv[1])))
warehouse.begin_run("umask test")
session = warehouse.get_session()
session.sql("CREATE TABLE CUSTOMERS (ID INT)").collect()
session.sql("INSERT INTO CUSTOMERS VALUES (1)").collect()
warehouse.close()
"""


def test_folder_and_files_are_the_owners_only_under_umask_022(tmp_path: Path) -> None:
    path = tmp_path / "data" / "warehouse"
    result = subprocess.run(
        [sys.executable, "-c", OWNER_RUN, str(path)], capture_output=True, text=True, timeout=180, env=_env()
    )
    assert result.returncode == 0, result.stderr[-3000:]
    record = embedded.read_record(path)
    assert record is not None and record["secret"]
    embedded.stop_server(path)  # the database checkpointed, the record removed: modes stay
    names = {p.name for p in path.iterdir()}
    assert {"SEGMENTATION.db", "server.log", "server.lock", "run.lock"} <= names
    assert path.stat().st_mode & 0o777 == 0o700
    for item in path.rglob("*"):
        expected = 0o700 if item.is_dir() else 0o600
        assert item.stat().st_mode & 0o777 == expected, item
    # a folder made readable by a careless chmod is closed again at the next start
    os.chmod(path, 0o755)
    os.chmod(path / "SEGMENTATION.db", 0o644)
    embedded.ensure_server(path)
    try:
        assert path.stat().st_mode & 0o777 == 0o700
        assert (path / "SEGMENTATION.db").stat().st_mode & 0o777 == 0o600
        assert (path / embedded.RECORD_NAME).stat().st_mode & 0o777 == 0o600
    finally:
        embedded.stop_server(path)


def _wakeups(pid: int) -> int:
    """Voluntary context switches of all the process's threads (one per wake-up from a sleep)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for line in (task / "status").read_text().splitlines():
            if line.startswith("voluntary_ctxt_switches"):
                total += int(line.split()[1])
    return total


def test_an_idle_server_does_not_wake_up(folder: Path) -> None:
    """No polling: with no request (and a client session open, watched by pidfd), nothing runs."""
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    warehouse.get_session().sql("SELECT 1").collect()  # an open session, as a notebook kernel keeps
    try:
        pid = embedded.ensure_server(folder).pid
        time.sleep(0.5)
        before = _wakeups(pid)
        time.sleep(3)
        # uvicorn's own loop woke 10 times a second, the old idle watcher once: 30+ here
        assert _wakeups(pid) - before <= 2
    finally:
        warehouse.close()


def test_a_stop_signal_or_idle_timeout_still_stops_it(tmp_path: Path) -> None:
    """Without the polling loop, SIGTERM and the idle timer still end the server (timer: re-armed on activity)."""
    first = embedded.ensure_server(tmp_path / "a")
    os.kill(first.pid, signal.SIGTERM)
    wait_gone(first.pid, timeout=20)
    assert embedded.read_record(tmp_path / "a") is None
    second = embedded.ensure_server(tmp_path / "b", idle_timeout=1.5)
    time.sleep(1.0)
    assert embedded.server_status(tmp_path / "b") is not None  # a request: the timer starts again
    time.sleep(1.0)
    assert embedded._pid_alive(second.pid)  # noqa: SLF001
    wait_gone(second.pid, timeout=20)


def test_a_client_the_server_cannot_see_gets_a_lease(tmp_path: Path) -> None:
    """A session whose client pid is not visible (another pid namespace) ends after its lease without requests."""
    from snowflake.snowpark import Session

    path = tmp_path / "wh"
    server = subprocess.Popen(
        [sys.executable, "-m", "customer_segmentation.warehouse.embedded_server", "--path", str(path)]
        + ["--idle-timeout", "60", "--session-lease", "1.5"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 60
        while embedded.server_status(path) is None:
            assert time.monotonic() < deadline and server.poll() is None
            time.sleep(0.05)
        params = embedded.server_connection_parameters(embedded.ensure_server(path), "SEGMENTATION", "PUBLIC")
        params["session_parameters"] = {
            **params["session_parameters"],
            "SEGMENTATION_CLIENT_PID": 2**22 + 7,  # above pid_max's default: no such process here
            "SEGMENTATION_CLIENT_START": 1,
        }
        session = Session.builder.configs(params).create()
        session.sql("CREATE TEMPORARY TABLE LEASED (N INT)").collect()
        (listed,) = embedded.server_status(path)["sessions"]
        assert listed["watched_by"] == "lease" and listed["temporary_tables"] == 1
        for _ in range(3):  # requests renew the lease
            time.sleep(0.8)
            session.sql("SELECT COUNT(*) FROM LEASED").collect()
        assert len(embedded.server_status(path)["sessions"]) == 1
        deadline = time.monotonic() + 10
        while embedded.server_status(path)["sessions"]:  # then 1.5 s without a request: ended
            assert time.monotonic() < deadline
            time.sleep(0.1)
        (ended,) = embedded.server_status(path)["ended_abandoned_sessions"]
        assert "lease" in ended["reason"]
        with pytest.raises(Exception, match="401 Unauthorized"):  # an ended session must log in again
            session.sql("SELECT 1").collect()
        try:
            session.close()
        except Exception:  # noqa: BLE001 - the server forgot the session already
            pass
    finally:
        embedded.stop_server(path)
        server.wait(timeout=60)


#: A client whose endless statement is interrupted by Ctrl-C: the connector asks the server to cancel
#: it, then raises KeyboardInterrupt; the client rolls back and logs out.
CANCELLED = """
import sys, time
from pathlib import Path
from customer_segmentation import warehouse
from customer_segmentation.warehouse.config import WarehouseSettings

path = Path(sys.argv[1])
warehouse.configure(WarehouseSettings.from_credentials({}, path))
session = warehouse.get_session()
session.sql("CREATE TABLE IF NOT EXISTS CANCELLED_KEPT (N INT)").collect()
session.sql("BEGIN").collect()
session.sql("INSERT INTO CANCELLED_KEPT VALUES (1)").collect()
print("READY", flush=True)
try:
    session.sql("SELECT COUNT(*) FROM TABLE(GENERATOR(ROWCOUNT => 1000000000000))").collect()
    print("FINISHED", flush=True)
except KeyboardInterrupt:
    print("INTERRUPTED", flush=True)
    session.sql("ROLLBACK").collect()
    print("ROLLED BACK", session.sql("SELECT COUNT(*) FROM CANCELLED_KEPT").collect()[0][0], flush=True)
warehouse.close()
"""


def test_ctrl_c_cancels_the_running_statement_at_once(folder: Path) -> None:
    """The connector's abort request is answered while the statement runs and stops it (it used to
    wait behind the session's lock until the statement ended: here, never)."""
    client = subprocess.Popen(
        [sys.executable, "-c", CANCELLED, str(folder)], stdout=subprocess.PIPE, text=True, env=_env()
    )
    try:
        assert client.stdout is not None and client.stdout.readline().strip() == "READY"
        time.sleep(0.5)  # the endless statement is running
        client.send_signal(signal.SIGINT)
        sent = time.monotonic()
        out, _ = client.communicate(timeout=60)
    finally:
        client.kill()
        client.wait()
    assert out.split() == ["INTERRUPTED", "ROLLED", "BACK", "0"], out
    assert client.returncode == 0
    assert time.monotonic() - sent < 30  # seconds on a busy 2-core machine; forever before the fix
    log = (folder / "server.log").read_text()
    assert "Cancelled the running statement of request" in log


def test_a_request_cut_off_mid_body_does_not_block_its_session(folder: Path) -> None:
    """Ctrl-C can land while the connector is still sending a request: the server must not hold the
    session's lock for a body that never comes, or the client's cancel, rollback and logout wait forever."""
    import socket

    record = embedded.read_record(folder)
    assert record is not None
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    session = warehouse.get_session()
    try:
        token = session._conn._conn.rest.token  # noqa: SLF001 - the session's token, as the connector sends it
        cut = socket.create_connection((record.get("host", "127.0.0.1"), record["port"]), timeout=10)
        try:
            head = (
                "POST /queries/v1/query-request?requestId=cut-off HTTP/1.1\r\n"
                f'Host: 127.0.0.1\r\nAuthorization: Snowflake Token="{token}"\r\n'
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
            cut.sendall(head.encode() + b'{"sqlText": "SELECT 1", ')  # ... and nothing more
            time.sleep(0.3)
            pool = ThreadPoolExecutor(1)
            answer = pool.submit(lambda: session.sql("SELECT 42").collect()[0][0])
            try:
                assert answer.result(timeout=30) == 42
            finally:
                pool.shutdown(wait=False)
        finally:
            cut.close()  # (the server then drops the cut-off request)
    finally:
        warehouse.close()
