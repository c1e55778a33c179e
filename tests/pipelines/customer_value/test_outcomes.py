"""SEGMENT_OUTCOMES compares like with like: the prediction summed is the one made for the measured window."""

from __future__ import annotations

from typing import Any

import pandas as pd

from customer_segmentation.datasets.customer_aggregates import CustomerAggregates
from customer_segmentation.pipelines.customer_value.nodes import segment_outcomes
from customer_segmentation.pipelines.customer_value.params import CustomerValueParams


def test_outcomes_sum_the_window_prediction_and_refuse_other_windows(warehouse_session: Any) -> None:
    session = warehouse_session
    session.sql(
        "CREATE TABLE SEGMENT_HISTORY (SNAPSHOT_DATE DATE, CUSTOMER_ID VARCHAR, SEGMENT_ID INT, "
        "SEGMENT_LABEL VARCHAR, P_ALIVE DOUBLE, EXPECTED_PURCHASES DOUBLE, CLV DOUBLE, "
        "OUTCOME_EXPECTED_PURCHASES DOUBLE, OUTCOME_EXPECTED_SPEND DOUBLE, OUTCOME_DAYS INT)"
    ).collect()
    session.sql(
        "INSERT INTO SEGMENT_HISTORY VALUES "
        # the window the outcome measures (180 days): summed
        "('2026-01-01', 'A', 0, 'Champions', 0.9, 4.0, 100.0, 1.5, 30.0, 180), "
        "('2026-01-01', 'B', 0, 'Champions', 0.7, 2.0, 50.0, 0.5, 10.0, 180), "
        # a member without a window prediction (a snapshot from before the columns): no partial sum
        "('2026-01-01', 'C', 1, 'Lost', 0.2, 1.0, 20.0, 2.0, 50.0, 180), "
        "('2026-01-01', 'D', 1, 'Lost', 0.1, 0.5, 5.0, NULL, NULL, NULL), "
        # predicted over 90 days (holdout_days was 90 then): not comparable with 180 days of outcome
        "('2026-01-08', 'A', 0, 'Champions', 0.9, 4.0, 100.0, 0.8, 16.0, 90)"
    ).collect()
    session.sql(
        "CREATE TABLE DAILY (CUSTOMER_ID VARCHAR, ORDER_DAY DATE, KEPT_ORDERS INT, NET_SPEND NUMBER(38,2))"
    ).collect()
    session.sql(
        "INSERT INTO DAILY VALUES ('A', '2026-02-01', 1, 20.00), ('C', '2026-03-01', 1, 40.00), "
        "('C', '2026-08-01', 1, 99.00), ('B', '2025-12-01', 1, 7.00)"
    ).collect()
    aggregates = CustomerAggregates(customers=None, daily_spend=session.table("DAILY"), state=None)
    session.sql("CREATE TABLE OUTCOMES_BEFORE (SNAPSHOT_DATE DATE)").collect()  # none recorded yet
    previous = session.table("OUTCOMES_BEFORE")
    got = (
        segment_outcomes(
            session.table("SEGMENT_HISTORY"), aggregates, previous, "2026-12-01", CustomerValueParams()
        )
        .to_pandas()
        .assign(SNAPSHOT_DATE=lambda f: f["SNAPSHOT_DATE"].astype(str))
        .set_index(["SNAPSHOT_DATE", "SEGMENT_ID"])
    )
    champions, lost, later = (
        got.loc[("2026-01-01", 0)],
        got.loc[("2026-01-01", 1)],
        got.loc[("2026-01-08", 0)],
    )
    assert champions["PREDICTED_PURCHASES"] == 2.0 and champions["PREDICTED_NET_REVENUE"] == 40.0
    assert champions["PREDICTION_HORIZON_DAYS"] == champions["PERIOD_DAYS"] == 180
    assert champions["ACTUAL_PURCHASES"] == 1 and champions["ACTUAL_NET_REVENUE"] == 20.0
    assert champions["PREDICTED_CLV"] == 150.0  # the horizon's CLV, as before
    assert pd.isna(lost["PREDICTED_PURCHASES"]) and pd.isna(lost["PREDICTED_NET_REVENUE"])
    assert pd.isna(lost["PREDICTION_HORIZON_DAYS"]) and lost["ACTUAL_PURCHASES"] == 1  # 2026-08-01 is after
    assert pd.isna(later["PREDICTED_PURCHASES"]) and later["CUSTOMERS"] == 1


def test_a_day_with_nothing_due_writes_nothing_once_the_table_exists(warehouse_session: Any) -> None:
    """Most days no snapshot turns holdout_days old: the node then builds nothing for an existing table."""
    from customer_segmentation.datasets.monitoring import SnapshotWrite

    session = warehouse_session
    session.sql(
        "CREATE TABLE SH (SNAPSHOT_DATE DATE, CUSTOMER_ID VARCHAR, SEGMENT_ID INT, SEGMENT_LABEL VARCHAR)"
    ).collect()
    session.sql("INSERT INTO SH VALUES ('2026-11-30', 'A', 0, 'Champions')").collect()  # 1 day old: not due
    session.sql(
        "CREATE TABLE DAILY2 (CUSTOMER_ID VARCHAR, ORDER_DAY DATE, KEPT_ORDERS INT, NET_SPEND NUMBER(38,2))"
    ).collect()
    aggregates = CustomerAggregates(customers=None, daily_spend=session.table("DAILY2"), state=None)
    # no SEGMENT_OUTCOMES yet (the catalog's one-column stand-in): an empty frame that creates it
    session.sql("CREATE TABLE STAND_IN (SNAPSHOT_DATE DATE)").collect()
    first = segment_outcomes(
        session.table("SH"), aggregates, session.table("STAND_IN"), "2026-12-01", CustomerValueParams()
    )
    assert not isinstance(first, SnapshotWrite) and first.count() == 0 and "ACTUAL_PURCHASES" in first.columns
    # the table exists: nothing to build or write
    first.write.save_as_table("OUTCOMES_NOW", mode="overwrite")
    later = segment_outcomes(
        session.table("SH"), aggregates, session.table("OUTCOMES_NOW"), "2026-12-01", CustomerValueParams()
    )
    assert isinstance(later, SnapshotWrite) and later.only_if_missing and later.keep_after is None
    # a snapshot that is due is measured as before
    due = segment_outcomes(
        session.table("SH"), aggregates, session.table("OUTCOMES_NOW"), "2027-06-01", CustomerValueParams()
    )
    assert not isinstance(due, SnapshotWrite) and due.count() == 1


def test_the_oldest_unrecorded_snapshots_old_enough_are_measured_at_most_n_per_run(
    warehouse_session: Any,
) -> None:
    """Due = old enough (holdout_days before the reference date or earlier), not in SEGMENT_OUTCOMES yet;
    the oldest first, outcome_snapshots_per_run of them per run."""
    session = warehouse_session
    session.sql(
        "CREATE TABLE SH3 (SNAPSHOT_DATE DATE, CUSTOMER_ID VARCHAR, SEGMENT_ID INT, SEGMENT_LABEL VARCHAR)"
    ).collect()
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05", "2026-06-04", "2026-06-05"]
    session.sql(
        "INSERT INTO SH3 VALUES "
        + ", ".join(f"('{d}', 'A', 0, 'Champions'), ('{d}', 'B', 1, 'Lost')" for d in days)
    ).collect()
    session.sql(
        "CREATE TABLE DAILY3 (CUSTOMER_ID VARCHAR, ORDER_DAY DATE, KEPT_ORDERS INT, NET_SPEND NUMBER(38,2))"
    ).collect()
    aggregates = CustomerAggregates(customers=None, daily_spend=session.table("DAILY3"), state=None)
    session.sql("CREATE TABLE DONE3 (SNAPSHOT_DATE DATE, SEGMENT_ID INT)").collect()
    session.sql("INSERT INTO DONE3 VALUES ('2026-01-02', 0), ('2026-01-02', 1)").collect()  # recorded already
    params = CustomerValueParams(holdout_days=180, outcome_snapshots_per_run=2)
    # 2026-12-01 - 180 days = 2026-06-04: that day is old enough, 2026-06-05 is not
    got = segment_outcomes(session.table("SH3"), aggregates, session.table("DONE3"), "2026-12-01", params)
    dates = sorted({str(r["SNAPSHOT_DATE"]) for r in got.collect()})
    assert dates == ["2026-01-01", "2026-01-03"]
    wide = CustomerValueParams(holdout_days=180, outcome_snapshots_per_run=31)
    got = segment_outcomes(session.table("SH3"), aggregates, session.table("DONE3"), "2026-12-01", wide)
    assert sorted({str(r["SNAPSHOT_DATE"]) for r in got.collect()}) == [
        "2026-01-01",
        "2026-01-03",
        "2026-01-05",
        "2026-06-04",
    ]
