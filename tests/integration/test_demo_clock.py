"""The demo lives on its own clock: `kedro run`, simulate_days 30, daily, simulate_days 30, daily, no workaround.

Recency is recomputed here independently (pandas, over the accepted events read with DuckDB) for
every snapshot, against the demo's today: the seed's `demo_data.loaded_at` plus the simulated days.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from tests.conftest import copy_project, run_pipeline, stop_embedded_servers, warehouse_rows

pytestmark = [pytest.mark.integration, pytest.mark.slow]

SEEDED = datetime(2026, 11, 1, 6)  # demo_data.loaded_at (conf/base/parameters.yml default)
DAYS = 30


def expected_recency(events: pd.DataFrame, reference: pd.Timestamp) -> pd.Series:
    """Days from each customer's last order (cancelled or not) before ``reference`` to it (README)."""
    orders = events[(events["EVENT_TYPE"] == "ORDER_CREATED") & (events["EVENT_TS"] < reference)]
    last = orders.groupby("CUSTOMER_ID")["EVENT_TS"].max()
    return (reference - last.dt.normalize()).dt.days.rename("RECENCY_DAYS").sort_index()


@pytest.fixture(scope="module")
def demo_sequence(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    project = copy_project(trained_template, tmp_path_factory.mktemp("clock") / "p")  # after `kedro run`
    try:
        clocks = [warehouse_rows(project, "SELECT TODAY, SET_BY FROM PUBLIC.DEMO_CLOCK")]
        for _ in range(2):
            run_pipeline(project, "simulate_days", {"simulate_days.days": DAYS})
            run_pipeline(project, "daily")  # no ingestion.as_of: the demo clock is "now"
            clocks.append(warehouse_rows(project, "SELECT TODAY, SET_BY FROM PUBLIC.DEMO_CLOCK"))
    finally:
        stop_embedded_servers(project)
    return {"project": project, "clocks": clocks}


def test_the_clock_moves_with_the_simulated_days(demo_sequence: dict[str, Any]) -> None:
    project = demo_sequence["project"]
    assert demo_sequence["clocks"] == [
        [(SEEDED, "demo seed")],
        [(SEEDED + timedelta(days=DAYS), f"simulate_days ({DAYS} day(s))")],
        [(SEEDED + timedelta(days=2 * DAYS), f"simulate_days ({DAYS} day(s))")],
    ]
    # the clock is the morning the latest batch was loaded; no event lies after it
    assert warehouse_rows(project, "SELECT MAX(LOADED_AT) FROM PUBLIC.RAW_DATA") == [
        (SEEDED + timedelta(days=2 * DAYS),)
    ]
    assert warehouse_rows(
        project, "SELECT MAX(EVENT_TS) < TIMESTAMP '2026-12-31 00:00:00' FROM PUBLIC.TRANSFORMED_DATA"
    )[0][0]


def test_every_simulated_event_is_accepted(demo_sequence: dict[str, Any]) -> None:
    """Only the seed's deliberate defects are rejected: no simulated event is a 'future' one."""
    project = demo_sequence["project"]
    (raw, simulated) = warehouse_rows(
        project,
        "SELECT COUNT(*), COUNT_IF(SOURCE_FILE LIKE 'demo://simulate/%') FROM PUBLIC.RAW_DATA",
    )[0]
    assert simulated > 300  # 400 customers (tests/conftest.py SMALL_DEMO), 60 days
    rejected = warehouse_rows(
        project,
        "SELECT COUNT(*), COUNT_IF(SOURCE_FILE LIKE 'demo://simulate/%') FROM PUBLIC.REJECTED_EVENTS",
    )[0]
    assert rejected[1] == 0
    accepted = warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA")[0][0]
    assert accepted + rejected[0] == raw
    # the ingestion runs' "now" was the demo clock at each run
    stamps = [r[0] for r in warehouse_rows(project, "SELECT DISTINCT UPDATED_AT FROM PUBLIC.INGESTION_STATE")]
    assert sorted(stamps) == [SEEDED + timedelta(days=d) for d in (0, DAYS, 2 * DAYS)]


def test_recency_is_counted_to_the_demo_clock_at_every_snapshot(demo_sequence: dict[str, Any]) -> None:
    project = demo_sequence["project"]
    events = pd.DataFrame(
        warehouse_rows(project, "SELECT CUSTOMER_ID, EVENT_TYPE, EVENT_TS FROM PUBLIC.TRANSFORMED_DATA"),
        columns=["CUSTOMER_ID", "EVENT_TYPE", "EVENT_TS"],
    )
    events["EVENT_TS"] = pd.to_datetime(events["EVENT_TS"])
    history = pd.DataFrame(
        warehouse_rows(
            project, "SELECT SNAPSHOT_DATE, CUSTOMER_ID, RECENCY_DAYS FROM PUBLIC.SEGMENT_HISTORY"
        ),
        columns=["SNAPSHOT_DATE", "CUSTOMER_ID", "RECENCY_DAYS"],
    )
    snapshots = sorted(pd.to_datetime(history["SNAPSHOT_DATE"]).unique())
    assert snapshots == [pd.Timestamp(SEEDED.date() + timedelta(days=d)) for d in (0, DAYS, 2 * DAYS)]
    for snapshot in snapshots:
        got = (
            history[pd.to_datetime(history["SNAPSHOT_DATE"]) == snapshot]
            .set_index("CUSTOMER_ID")["RECENCY_DAYS"]
            .astype(int)
            .sort_index()
        )
        expected = expected_recency(events, snapshot)
        assert list(got.index) == list(expected.index), snapshot
        assert (got == expected).all(), snapshot
        assert got.min() >= 1  # nobody ordered "today" or later: the clock is after every event
    final = warehouse_rows(project, "SELECT DISTINCT REFERENCE_DATE FROM PUBLIC.PROCESSED_DATA")
    assert final == [((SEEDED + timedelta(days=2 * DAYS)).date(),)]
