"""The shared embedded warehouse server: one process per folder, reused, stale records, idle and explicit stop.

Clients are separate processes here (as `kedro run`, `kedro viz` and a notebook kernel are), each
running a few lines of Python against the folder's server.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from customer_segmentation import warehouse
from customer_segmentation.errors import EmbeddedWarehouseBusyError
from customer_segmentation.warehouse import embedded
from customer_segmentation.warehouse.config import WarehouseSettings
from tests.conftest import embedded_server_pids, wait_gone

SRC = Path(__file__).resolve().parents[2] / "src"

CLIENT = """
import json, sys
from pathlib import Path
from customer_segmentation import warehouse
from customer_segmentation.warehouse import embedded
from customer_segmentation.warehouse.config import WarehouseSettings

path, sql = Path(sys.argv[1]), sys.argv[2:]
warehouse.configure(WarehouseSettings.from_credentials({}, path, idle_timeout_seconds=60))
session = warehouse.get_session()
rows = [[list(r) for r in session.sql(s).collect()] for s in sql]
print(json.dumps({"pid": embedded.read_record(path)["pid"], "rows": rows}, default=str))
warehouse.close()
"""


def _client(path: Path, *sql: str) -> dict[str, Any]:
    """Run SQL in a separate client process; returns the server pid it used and the rows."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run(
        [sys.executable, "-c", CLIENT, str(path), *sql], capture_output=True, text=True, timeout=180, env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_second_client_reuses_the_server_and_sees_the_first_ones_writes(folder: Path) -> None:
    first = _client(
        folder, "CREATE TABLE T (ID INT, NAME VARCHAR)", "INSERT INTO T VALUES (1, 'a'), (2, 'b')"
    )
    record = embedded.read_record(folder)
    assert record is not None and record["pid"] == first["pid"]
    assert record["path"] == str(folder.resolve()) and record["host"] == "127.0.0.1" and record["port"] > 0
    assert {"user", "started_at", "version", "hostname", "memory_limit", "idle_timeout_seconds"} <= set(
        record
    )
    second = _client(folder, "SELECT ID, NAME FROM T ORDER BY ID")
    assert second["pid"] == first["pid"]  # reused, not a second server
    assert second["rows"] == [[[1, "a"], [2, "b"]]]
    # and this process, a third client, at the same time as a fourth
    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    session = warehouse.get_session()
    third = _client(folder, "INSERT INTO T VALUES (3, 'c')")
    assert third["pid"] == first["pid"]
    assert session.sql("SELECT COUNT(*) FROM T").collect()[0][0] == 3
    assert len(embedded_server_pids(folder.parent)) == 1


def test_clients_starting_at_once_make_one_server(folder: Path) -> None:
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda i: _client(folder, f"SELECT {i}"), range(4)))
    assert len({r["pid"] for r in results}) == 1
    assert [r["rows"][0][0][0] for r in results] == [0, 1, 2, 3]
    assert embedded_server_pids(folder.parent) == [results[0]["pid"]]


def test_stale_record_after_kill_9_is_cleaned_and_data_survives(folder: Path) -> None:
    first = _client(folder, "CREATE TABLE T (ID INT)", "INSERT INTO T VALUES (7)")
    os.kill(first["pid"], signal.SIGKILL)
    wait_gone(first["pid"])
    assert embedded.read_record(folder)["pid"] == first["pid"]  # left behind by the crash
    assert embedded.server_status(folder) is None  # recognised as stale
    second = _client(folder, "SELECT ID FROM T")
    assert second["pid"] != first["pid"]
    assert second["rows"] == [[[7]]]  # committed before the crash: still there (DuckDB's WAL)
    assert embedded.read_record(folder)["pid"] == second["pid"]


def test_record_answered_for_another_folder_is_stale(tmp_path: Path, folder: Path) -> None:
    other = tmp_path / "other"
    other_pid = _client(other, "SELECT 1")["pid"]
    try:
        # a record whose port answers, but for another folder (e.g. a copied data folder)
        (folder).mkdir(parents=True)
        (folder / embedded.RECORD_NAME).write_text((other / embedded.RECORD_NAME).read_text())
        mine = _client(folder, "SELECT 1")["pid"]
        assert mine != other_pid
        assert embedded.read_record(folder)["path"] == str(folder.resolve())
        assert embedded.read_record(other)["pid"] == other_pid  # the other server is left alone
        assert embedded._pid_alive(other_pid)  # noqa: SLF001
    finally:
        embedded.stop_server(other)


def test_record_from_another_host_is_stale(folder: Path) -> None:
    folder.mkdir(parents=True)
    (folder / embedded.RECORD_NAME).write_text(
        json.dumps(
            {"pid": os.getpid(), "port": 1, "host": "127.0.0.1", "path": str(folder), "hostname": "elsewhere"}
        )
    )
    pid = _client(folder, "SELECT 1")["pid"]
    assert pid != os.getpid() and embedded.read_record(folder)["hostname"] != "elsewhere"


def test_idle_server_stops_by_itself_and_the_next_client_restarts_it(folder: Path) -> None:
    warehouse.configure(WarehouseSettings.from_credentials({}, folder, idle_timeout_seconds=2))
    session = warehouse.get_session()
    session.sql("CREATE TABLE T (ID INT)").collect()
    pid = embedded.read_record(folder)["pid"]
    time.sleep(1.2)
    session.sql("INSERT INTO T VALUES (1)").collect()  # a request resets the idle clock
    time.sleep(1.2)
    assert embedded._pid_alive(pid)  # noqa: SLF001
    wait_gone(pid, timeout=15)  # then ~2 s without a request: it stops
    assert embedded.read_record(folder) is None  # and removes its record
    assert "no client request for 2 s" in (folder / embedded.LOG_NAME).read_text()
    # the open session's server is gone: get_session() reconnects to a new one
    again = warehouse.get_session()
    assert again is not session
    assert again.sql("SELECT COUNT(*) FROM T").collect()[0][0] == 1
    assert embedded.read_record(folder)["pid"] != pid


def test_explicit_stop_and_status_commands(folder: Path) -> None:
    pid = _client(folder, "SELECT 1")["pid"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "customer_segmentation.warehouse"]
    status = subprocess.run([*cmd, "status", "--path", str(folder)], capture_output=True, text=True, env=env)
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == pid
    stop = subprocess.run([*cmd, "stop", "--path", str(folder)], capture_output=True, text=True, env=env)
    assert stop.returncode == 0 and "Stopped" in stop.stdout, stop.stderr
    assert not embedded._pid_alive(pid) and embedded.read_record(folder) is None  # noqa: SLF001
    status = subprocess.run([*cmd, "status", "--path", str(folder)], capture_output=True, text=True, env=env)
    assert status.returncode == 1 and "No embedded warehouse server" in status.stdout
    again = subprocess.run([*cmd, "stop", "--path", str(folder)], capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "No embedded warehouse server was running" in again.stdout


def test_a_stopped_server_leaves_no_stage_folder(folder: Path, tmp_path: Path, monkeypatch: Any) -> None:
    """fakesnow's stage folder (fakesnow_bucket_*, made at import) goes with the server (compat patch 12)."""
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))  # the server, started by the client below, inherits it
    pid = _client(folder, "SELECT 1")["pid"]
    embedded.stop_server(folder)
    wait_gone(pid)
    assert [p.name for p in scratch.iterdir() if p.name.startswith("fakesnow_bucket_")] == []


def test_sessions_of_one_server_run_in_parallel_without_losing_writes(folder: Path) -> None:
    _client(folder, "CREATE TABLE T (CLIENT INT, N INT)")
    inserts = [
        " ".join(["INSERT INTO T SELECT", str(c), ", SEQ4() FROM TABLE(GENERATOR(ROWCOUNT => 500))"])
        for c in range(4)
    ]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda sql: _client(folder, sql, sql), inserts))
    rows = _client(folder, "SELECT CLIENT, COUNT(*) FROM T GROUP BY CLIENT ORDER BY CLIENT")["rows"][0]
    assert rows == [[c, 1000] for c in range(4)]


def test_run_lock_makes_a_second_run_wait_then_fail_clearly(folder: Path) -> None:
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
            import sys, time
            sys.path.insert(0, {str(SRC)!r})
            from customer_segmentation.warehouse.embedded import RunLock
            lock = RunLock({str(folder)!r}); lock.acquire(5, "pipeline test")
            print("locked", flush=True); time.sleep(60)
        """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        lock = embedded.RunLock(folder)
        start = time.monotonic()
        with pytest.raises(EmbeddedWarehouseBusyError, match=rf"pid {holder.pid}, pipeline test.*waited 1 s"):
            lock.acquire(1, "pipeline second")
        assert time.monotonic() - start >= 1
        holder.kill()  # the holder crashes: the kernel releases its lock
        holder.wait()
        lock.acquire(5, "pipeline second")
        assert lock.held
        lock.release()
    finally:
        holder.kill()
        holder.wait()


def test_kedro_warehouse_status_and_stop_commands(tmp_path: Path) -> None:
    from tests.conftest import make_project_copy

    project = make_project_copy(tmp_path / "project")
    folder = project / "data" / "warehouse"
    pid = _client(folder, "SELECT 1")["pid"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    env["KEDRO_DISABLE_TELEMETRY"] = "true"
    kedro = [sys.executable, "-m", "kedro", "warehouse"]
    status = subprocess.run(
        [*kedro, "status"], cwd=project, capture_output=True, text=True, env=env, timeout=120
    )
    assert status.returncode == 0, status.stderr[-2000:]
    assert f'"pid": {pid}' in status.stdout and str(folder.resolve()) in status.stdout
    stop = subprocess.run([*kedro, "stop"], cwd=project, capture_output=True, text=True, env=env, timeout=120)
    assert stop.returncode == 0 and "Stopped the embedded warehouse server" in stop.stdout, stop.stderr[
        -2000:
    ]
    assert not embedded._pid_alive(pid) and embedded.read_record(folder) is None  # noqa: SLF001


def test_a_server_stopped_before_its_starting_client_checked_it_exits_at_once(folder: Path) -> None:
    """A stop signal between the record and the starting client's first check ends the server at once.

    The client that starts a server holds the start lock until the server answers its check; a
    stopping server takes the same lock before it releases its files. Signalled in between, each
    waited for the other until the client's 120 s start timeout. A server that has not answered
    any request yet now stops without the lock: its starter sees the process exit and says so.
    """
    import fcntl

    folder.mkdir(mode=0o700)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    lock = os.open(folder / embedded.LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)  # as embedded._start_server's caller holds it
        process = subprocess.Popen(
            [sys.executable, "-m", "customer_segmentation.warehouse.embedded_server", "--path", str(folder)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while (record := embedded.read_record(folder)) is None or record.get("pid") != process.pid:
            assert process.poll() is None and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        process.send_signal(signal.SIGTERM)  # before any request: the "client" still holds the lock
        try:
            code = process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail("the server waited for the start lock held by the client waiting for it")
        assert code == 0
        assert embedded.read_record(folder) is None  # its record went with it
    finally:
        os.close(lock)
    assert _client(folder, "SELECT 42")["rows"] == [[[42]]]  # the next client starts a new server


@pytest.mark.parametrize("client_connected", [False, True])
def test_the_server_skips_uvicorns_grace_sleep_only_with_nobody_connected(
    client_connected: bool, monkeypatch: Any
) -> None:
    """uvicorn sleeps 0.1 s at shutdown for open connections to finish: with none, the server stops at once
    (an in-process warehouse stops at the end of every run); with a client connected, uvicorn's path."""
    import asyncio
    import socket
    import threading

    import uvicorn

    from customer_segmentation.warehouse.embedded_server import _Server

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                pass

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error", lifespan="off")
    serving = threading.Event()
    server = _Server.make(config, lambda loop: serving.set())
    grace: list[float] = []
    real_sleep = asyncio.sleep

    async def sleep(delay: float, *args: Any, **kwargs: Any) -> Any:
        if delay >= 0.1:
            grace.append(delay)
        return await real_sleep(0, *args, **kwargs)

    monkeypatch.setattr(asyncio, "sleep", sleep)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    assert serving.wait(10)
    client = socket.create_connection(("127.0.0.1", port)) if client_connected else None
    try:
        if client is not None:
            deadline = time.monotonic() + 5
            while not server.server_state.connections and time.monotonic() < deadline:
                time.sleep(0.01)
        server.should_exit = True
        server.wake()
        thread.join(10)
    finally:
        if client is not None:
            client.close()
    assert not thread.is_alive()
    assert grace == ([0.1] if client_connected else [])


def test_close_waits_for_a_background_start_still_in_flight(folder: Path) -> None:
    """configure() starts the server in the background; a close() before any session settles that start.

    Without the wait, the server came up after the caller had closed and stopped what it knew of,
    and stayed alive until its idle timeout (seen in a test run: 'still running at the end of the
    session').
    """
    import threading

    warehouse.configure(WarehouseSettings.from_credentials({}, folder))
    warehouse.close()  # at once: the background start has not finished yet
    assert not [t for t in threading.enumerate() if t.name == "embedded-warehouse-start"]
    status = embedded.server_status(folder)
    assert status is not None  # up and recorded: a stop (the fixture's) finds it
    assert embedded.stop_server(folder)
    wait_gone(status["pid"])
