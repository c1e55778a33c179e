"""Killed runs leave a warehouse that the next run finishes, with no manual step (issue 18).

A throw-away warehouse with a history this project did not design (the public CDNOW sample: a CD
retailer's 2,357 customers, 1997-1998, mostly one-time buyers) gets its first months loaded and
a full `kedro run`; then the rest of the history is loaded (`load_events`) and the morning job runs
(`daily`). One copy does that uninterrupted (the reference). Another has each of the two runs
killed with SIGKILL at several points: the client alone (an OOM kill, a cancelled job), and once
the client and the server together (a crash of the machine); then one plain rerun of each, which
must succeed with nothing done in between. The durable tables must then hold exactly the rows of
the reference, apart from the columns that stamp a run (load and run times, run ids, hashes of
the load stamps).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from customer_segmentation.warehouse import embedded
from tests.conftest import make_project_copy, run_pipeline, stop_server_of, warehouse_rows
from tests.public_data import cdnow_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

KEDRO = str(Path(sys.executable).with_name("kedro"))
USER_DATA = {"demo_data.enabled": False}
#: What a run stamps (times, run ids, and RECORD_ID, a hash that includes the load stamp): two
#: runs of the same data differ there by design.
RUN_STAMPS = {
    "LOADED_AT",
    "INGESTED_AT",
    "INGESTION_RUN_ID",
    "RUN_ID",
    "RECORD_ID",
    "FINISHED_AT",
    "UPDATED_AT",
    "SCORED_AT",
    "REJECTED_AT",
    "MIN_RUN_ID",
    "MAX_RUN_ID",
}
#: What PROCESSED_DATA says about the previous scoring (as in test_reruns.py): a killed `daily`
#: that got past scoring has scored the same data once already, so the rerun's "previous" label
#: is that run's, not the one before; checked separately below.
RELATIVE = ("IS_NEW_CUSTOMER", "PREVIOUS_SEGMENT_LABEL")
#: The durable tables: raw, transformed, rejected, features (and the aggregates they are built
#: from), processed, load history, segment history, models.
DURABLE = (
    "RAW_DATA",
    "TRANSFORMED_DATA",
    "REJECTED_EVENTS",
    "CUSTOMER_AGGREGATES",
    "CUSTOMER_DAILY_SPEND",
    "CUSTOMER_FEATURES",
    "PROCESSED_DATA",
    "LOAD_HISTORY",
    "SEGMENT_HISTORY",
    "SEGMENTATION_MODELS",
)
#: Where the killed runs die: fractions of an uninterrupted run's time from taking the run lock to its end.
#: (fraction, with the server): the crash comes second, while the first load may not have committed.
KILLS = ((0.15, False), (0.5, True), (0.85, False))


def run(
    project: Path, pipeline: str, params: str, kill_after: float | None = None, with_server: bool = False
) -> tuple[str, float | None, int | None]:
    """`kedro run` in a process; SIGKILL it ``kill_after`` s after it took the run lock (and the server
    too, for a crash). Returns (output, seconds from the run lock to the end, exit code or None if killed).

    Timed from the run lock (written by the run once Kedro has started and the warehouse is
    reached), so that the kills land in the run's warehouse work whatever Kedro's start-up takes.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("SNOWFLAKE_")}
    env.update(KEDRO_DISABLE_TELEMETRY="true")
    log = project.parent / f"{project.name}-{pipeline}-{time.monotonic_ns()}.log"
    folder = project / "data" / "warehouse"
    with log.open("w") as out:
        process = subprocess.Popen(
            [KEDRO, "run", "--pipelines", pipeline, f"--params={params}"],
            cwd=project,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    locked_at, deadline = None, time.monotonic() + 900
    while process.poll() is None and time.monotonic() < deadline:
        now = time.monotonic()
        if locked_at is None:
            try:
                holder = (folder / embedded.RUN_LOCK_NAME).read_text()
            except OSError:
                holder = ""
            if f"pid {process.pid}," in holder:
                locked_at = now
        elif kill_after is not None and now - locked_at >= kill_after:
            record = embedded.read_record(folder) if with_server else None
            process.kill()
            if record is not None:
                try:
                    os.kill(int(record["pid"]), signal.SIGKILL)
                except ProcessLookupError:
                    pass
            process.wait()
            return log.read_text(), None, None
        time.sleep(0.02)
    process.wait(timeout=60)
    return log.read_text(), (time.monotonic() - locked_at) if locked_at else None, process.returncode


def finished(project: Path, pipeline: str, params: str, what: str) -> float:
    """An uninterrupted run that must succeed; its duration from the run lock to the end."""
    output, duration, code = run(project, pipeline, params)
    assert code == 0, f"{what} failed:\n{output[-5000:]}"
    assert duration is not None, output[-3000:]
    return duration


def progress(output: str) -> int:
    """How many nodes a killed run had completed (Kedro logs "Completed N out of M tasks")."""
    done = [int(m) for m in re.findall(r"Completed (\d+) out of \d+ tasks", output)]
    return max(done, default=0)


def durable_rows(project: Path) -> dict[str, pd.DataFrame]:
    """Each durable table without its run stamps, sorted on every column (read with DuckDB directly)."""
    import duckdb

    stop_server_of(project)
    con = duckdb.connect(str(project / "data" / "warehouse" / "SEGMENTATION.db"), read_only=True)
    try:
        out = {}
        for table in DURABLE:
            columns = [r[0] for r in con.execute(f"DESCRIBE PUBLIC.{table}").fetchall()]
            kept = [
                c
                for c in columns
                if c not in RUN_STAMPS and not (table == "PROCESSED_DATA" and c in RELATIVE)
            ]
            select = ", ".join(f'"{c}"' for c in kept)
            out[table] = con.execute(
                f"SELECT {select} FROM PUBLIC.{table} ORDER BY {', '.join(map(str, range(1, len(kept) + 1)))}"
            ).df()
        return out
    finally:
        con.close()


def test_killed_load_events_and_daily_converge_to_the_uninterrupted_state(tmp_path: Path) -> None:
    events = cdnow_events("sample")
    first, rest = tmp_path / "first.csv", tmp_path / "rest.csv"
    events[events["EVENT_TS"] < "1997-10-01"].to_csv(first, index=False)
    events[events["EVENT_TS"] >= "1997-10-01"].to_csv(rest, index=False)
    base = make_project_copy(tmp_path / "base")
    run_pipeline(base, "load_events", {**USER_DATA, "events_file": str(first)})
    run_pipeline(base, None, USER_DATA)  # features, a model, scores, the first snapshot
    stop_server_of(base)
    copy = shutil.ignore_patterns("server.json", "*.lock", "server.log*")
    reference = Path(shutil.copytree(base, tmp_path / "reference", ignore=copy))
    chaos = Path(shutil.copytree(base, tmp_path / "chaos", ignore=copy))
    try:
        load_params = f"demo_data.enabled=false,events_file={rest}"
        daily_params = "demo_data.enabled=false"
        durations = {
            "load_events": finished(reference, "load_events", load_params, "load_events (reference)"),
            "daily": finished(reference, "daily", daily_params, "daily (reference)"),
        }
        reached: dict[str, list[int]] = {}
        for pipeline, params in (("load_events", load_params), ("daily", daily_params)):
            outputs = [
                run(chaos, pipeline, params, durations[pipeline] * f, server)[0] for f, server in KILLS
            ]
            # nodes completed when killed (-1: the run ended first, as a run quicker than the reference may)
            reached[pipeline] = [-1 if "Pipeline execution completed" in o else progress(o) for o in outputs]
            finished(chaos, pipeline, params, f"the rerun of {pipeline} after the kills")
        # the kills landed inside the runs' warehouse work, not only in Kedro's start-up
        assert any(n > 0 for n in reached["daily"]), reached
        print(f"nodes completed when killed: {reached}")  # noqa: T201 - with -s: where the kills landed

        expected, got = durable_rows(reference), durable_rows(chaos)
        assert len(expected["RAW_DATA"]) == len(events)
        assert len(expected["SEGMENT_HISTORY"]) > 0 and len(expected["SEGMENTATION_MODELS"]) > 0
        for table in DURABLE:
            pd.testing.assert_frame_equal(got[table], expected[table], obj=table)
        # the previous label is the one before this daily or (a killed run scored already) the same
        relative = "SELECT CUSTOMER_ID, SEGMENT_LABEL, PREVIOUS_SEGMENT_LABEL, IS_NEW_CUSTOMER FROM PUBLIC.PROCESSED_DATA"
        before = {r[0]: r[1:] for r in warehouse_rows(reference, relative)}
        for customer, label, previous, new in warehouse_rows(chaos, relative):
            assert previous in (before[customer][1], label), customer
            assert new in (before[customer][2], False), customer
    finally:
        for project in (base, reference, chaos):
            stop_server_of(project)
