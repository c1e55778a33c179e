"""Ctrl-C and SIGTERM during a real `kedro run`: a clean stop, then a rerun that equals an uninterrupted run.

Each run is a `python -m kedro run` subprocess on its own project copy (embedded warehouse,
demo of 400 customers); the signal is sent when the run's log shows a given node starting. The
uninterrupted run compared with is the shared trained demo (tests/conftest.py ``trained_template``:
one full run with the same parameters, built once per test run).
"""

from __future__ import annotations

import fcntl
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import SMALL_DEMO, copy_project, make_project_copy, stop_embedded_servers, warehouse_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARAMS = "--params=demo_data.n_customers=400"
#: The durable tables a run writes, without the columns that name the run (run ids, wall-clock stamps).
KEY_TABLES = {
    "TRANSFORMED_DATA": "SELECT RECORD_ID, EVENT_ID, EVENT_TYPE, EVENT_TS, CUSTOMER_ID, AMOUNT, LOADED_AT, "
    "INGESTED_AT FROM PUBLIC.TRANSFORMED_DATA ORDER BY RECORD_ID",
    "REJECTED_EVENTS": "SELECT RECORD_ID, REJECT_REASON, REJECTED_AT FROM PUBLIC.REJECTED_EVENTS ORDER BY RECORD_ID",
    "INGESTION_STATE": "SELECT PIPELINE, MAX(WATERMARK), MAX(RAW_EVENTS) FROM PUBLIC.INGESTION_STATE GROUP BY 1",
    "CUSTOMER_FEATURES": "SELECT * FROM PUBLIC.CUSTOMER_FEATURES ORDER BY CUSTOMER_ID",
    "PROCESSED_DATA": "SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL, RFM_SEGMENT, RECENCY_DAYS, FREQUENCY, MONETARY, "
    "REFERENCE_DATE FROM PUBLIC.PROCESSED_DATA ORDER BY CUSTOMER_ID",
    "SEGMENT_HISTORY": "SELECT SNAPSHOT_DATE, CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL FROM PUBLIC.SEGMENT_HISTORY "
    "ORDER BY SNAPSHOT_DATE, CUSTOMER_ID",
    # the active (newest) model: training is deterministic on unchanged events
    "ACTIVE_MODEL": "SELECT K, CENTROIDS, LABELS FROM PUBLIC.SEGMENTATION_MODELS "
    "ORDER BY TRAINED_AT DESC, REGISTERED_AT DESC, VERSION DESC LIMIT 1",
    "DEMO_CLOCK": "SELECT TODAY FROM PUBLIC.DEMO_CLOCK",
}


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "SEGMENTATION_EMBEDDED"))}
    env.update(KEDRO_DISABLE_TELEMETRY="true", COLUMNS="250", PYTHONUNBUFFERED="1")
    return env


def kedro_run(project: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kedro", "run", PARAMS],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=900,
    )


def key_tables(project: Path) -> dict[str, list[tuple]]:
    def rounded(row: tuple) -> tuple:
        return tuple(round(v, 9) if isinstance(v, float) else v for v in row)

    return {name: [rounded(r) for r in warehouse_rows(project, sql)] for name, sql in KEY_TABLES.items()}


@pytest.fixture(scope="module")
def uninterrupted(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[tuple]]:
    """The key tables of an uninterrupted `kedro run` with PARAMS: the shared trained demo (conftest's
    ``trained_template``, one full run with the same parameters, SMALL_DEMO), read from a copy."""
    assert PARAMS == "--params=" + ",".join(f"{k}={v}" for k, v in SMALL_DEMO.items())
    project = copy_project(trained_template, tmp_path_factory.mktemp("uninterrupted") / "p")
    try:
        return key_tables(project)
    finally:
        stop_embedded_servers(project)


def interrupt(project: Path, signum: int, when: str, timeout: float = 600) -> dict[str, Any]:
    """Start `kedro run`, send ``signum`` once the log shows ``when``; exit code, seconds to exit, output."""
    process = subprocess.Popen(
        [sys.executable, "-m", "kedro", "run", PARAMS],
        cwd=project,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stderr: list[str] = []
    reader = threading.Thread(target=lambda: stderr.extend(process.stderr), daemon=True)  # type: ignore[arg-type]
    reader.start()
    stdout: list[str] = []
    deadline = time.monotonic() + timeout
    sent_at = None
    for line in process.stdout:  # type: ignore[union-attr]
        stdout.append(line)
        if sent_at is None and when in line:
            process.send_signal(signum)
            sent_at = time.monotonic()
        if time.monotonic() > deadline:
            process.kill()
            break
    code = process.wait(timeout=120)
    seconds = time.monotonic() - sent_at if sent_at is not None else None
    reader.join(timeout=10)
    return {"code": code, "seconds": seconds, "stdout": "".join(stdout), "stderr": "".join(stderr)}


@pytest.mark.parametrize(
    ("signum", "code", "name", "when"),
    [
        # during ingestion's merges into TRANSFORMED_DATA / REJECTED_EVENTS
        (signal.SIGINT, 130, "Ctrl-C (SIGINT)", "Running node: split_valid_and_rejected_events"),
        # during the monitoring snapshot (a transaction), after the model was registered
        (signal.SIGTERM, 143, "SIGTERM", "Running node: snapshot_segment_history"),
    ],
)
def test_an_interrupted_run_stops_cleanly_and_a_rerun_equals_an_uninterrupted_one(
    tmp_path: Path, uninterrupted: dict[str, list[tuple]], signum: int, code: int, name: str, when: str
) -> None:
    project = make_project_copy(tmp_path / "p")
    try:
        check_interrupted_run(project, signum, code, name, when, uninterrupted)
    finally:
        stop_embedded_servers(project)


def check_interrupted_run(
    project: Path, signum: int, code: int, name: str, when: str, uninterrupted: dict[str, list[tuple]]
) -> None:
    from customer_segmentation.warehouse import embedded

    folder = project / "data" / "warehouse"
    run = interrupt(project, signum, when)
    output = run["stdout"] + run["stderr"]
    assert run["seconds"] is not None, f"never reached {when!r}:\n{output[-3000:]}"
    assert run["code"] == code, output[-3000:]
    # "within seconds": 0.1-0.2 s measured at load average 6-7; the bound is for a 2-core machine busy
    # with a parallel test suite (20.5 s there once, before the cancel and the exit were made prompt)
    assert run["seconds"] < 10, run["seconds"]
    # one line, and no traceback
    message = [line for line in output.splitlines() if "Run interrupted" in line]
    assert message == [
        f"Run interrupted by {name}: the warehouse is consistent and its session closed; "
        "run the same command again to resume."
    ]
    assert run["stderr"].strip() == message[0]
    assert "Traceback" not in output and "Aborted" not in output
    # nothing left behind: the run lock is free, the server has no session open (its temporary
    # tables are dropped at logout)
    with open(folder / embedded.RUN_LOCK_NAME, "rb") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # raises BlockingIOError if still held
        fcntl.flock(lock, fcntl.LOCK_UN)
    status = embedded.server_status(folder)
    assert status is None or status["open_sessions"] == 0, status
    # and the run's per-session scratch tables (INGESTION_TYPED, INGESTION_REPEATS, stored by the
    # emulator as tables of the schema) are gone from the database files
    scratch = "SELECT table_name FROM duckdb_tables() WHERE table_name LIKE 'INGESTION_TYPED%' OR table_name LIKE 'INGESTION_REPEATS%'"
    assert warehouse_rows(project, scratch) == []

    rerun = kedro_run(project)
    assert rerun.returncode == 0, rerun.stdout[-3000:] + rerun.stderr[-3000:]
    got = key_tables(project)
    for table, expected in uninterrupted.items():
        assert got[table] == expected, table
