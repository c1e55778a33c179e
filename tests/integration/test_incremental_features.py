"""The daily run updates the feature aggregates incrementally; its CUSTOMER_FEATURES equal a full recompute."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import copy_project, run_pipeline, warehouse_rows

pytestmark = pytest.mark.integration

FEATURES = "SELECT * FROM PUBLIC.CUSTOMER_FEATURES ORDER BY CUSTOMER_ID"
STATE = "SELECT WATERMARK, EVENTS, MODE, CUSTOMERS_UPDATED FROM PUBLIC.CUSTOMER_AGGREGATES_STATE"
AGGREGATES = "SELECT * FROM PUBLIC.CUSTOMER_AGGREGATES ORDER BY CUSTOMER_ID"


def _rounded(rows: list[tuple]) -> list[tuple]:
    return [tuple(round(v, 9) if isinstance(v, float) else v for v in row) for row in rows]


@pytest.mark.slow
def test_daily_features_are_incremental_and_equal_a_full_recompute(
    trained_template: Path, tmp_path: Path
) -> None:
    project = copy_project(trained_template, tmp_path / "p")  # the demo after one full `kedro run`
    (full_state,) = warehouse_rows(project, STATE)
    assert full_state[2] == "rebuild"
    customers = warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.CUSTOMER_AGGREGATES")[0][0]

    run_pipeline(project, "simulate_days", {"simulate_days.days": 3})
    run_pipeline(project, "daily")  # on the demo clock
    (state,) = warehouse_rows(project, STATE)
    assert state[2] == "incremental" and state[0] > full_state[0] and state[1] > full_state[1]
    assert 0 < state[3] < customers  # only the customers with new events were recomputed
    daily_features, daily_aggregates = warehouse_rows(project, FEATURES), warehouse_rows(project, AGGREGATES)

    # a second daily without new events writes nothing
    run_pipeline(project, "daily")
    assert warehouse_rows(project, STATE) == [state]
    assert warehouse_rows(project, AGGREGATES) == daily_aggregates

    # the full recompute from every event gives the same features
    run_pipeline(project, "rfm_features")
    assert warehouse_rows(project, STATE)[0][2] == "rebuild"
    assert _rounded(warehouse_rows(project, FEATURES)) == _rounded(daily_features)
