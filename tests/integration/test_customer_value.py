"""Customer value end to end on throw-away embedded warehouses (issue 21).

- the demo: `kedro run` at a past reference date, then at the default one, fills CUSTOMER_VALUE and the
  PROCESSED_DATA columns for every customer, stores a holdout report, and measures SEGMENT_OUTCOMES of
  the first snapshot (checked against pandas on the events); a rerun gives the same CUSTOMER_VALUE;
  simulate_days + daily keeps everything there and the incremental summary equals a full recompute;
- a public history (CDNOW, with whole-order returns, cancellations and zero-value orders added): the
  summary equals an independent pandas computation from the events.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.conftest import (
    collect_records,
    make_project_copy,
    run_pipeline,
    stop_embedded_servers,
    warehouse_rows,
)
from tests.public_data import cdnow_events

pytestmark = [pytest.mark.integration, pytest.mark.slow]

#: Simulated days lie after the machine's clock: ingestion must not reject them as future events.
AS_OF = {"ingestion.as_of": "2030-01-01"}
USER_DATA = {"demo_data.enabled": False}
FIRST_REFERENCE = "2026-05-01"
SUMMARY = (
    "SELECT CUSTOMER_ID, REFERENCE_DATE, FIRST_PURCHASE_DATE, LAST_PURCHASE_DATE, X, T_X, T, MEAN_VALUE "
    "FROM PUBLIC.CUSTOMER_VALUE ORDER BY CUSTOMER_ID"
)
VALUE = (
    "SELECT CUSTOMER_ID, REFERENCE_DATE, FIRST_PURCHASE_DATE, LAST_PURCHASE_DATE, X, T_X, T, MEAN_VALUE, "
    "P_ALIVE, EXPECTED_PURCHASES, EXPECTED_ORDER_VALUE, CLV FROM PUBLIC.CUSTOMER_VALUE ORDER BY CUSTOMER_ID"
)


def frame(project: Path, sql: str) -> pd.DataFrame:
    import duckdb

    from customer_segmentation.warehouse import embedded

    embedded.stop_server(project / "data" / "warehouse")
    con = duckdb.connect(str(project / "data" / "warehouse" / "SEGMENTATION.db"), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def stable(values: pd.DataFrame) -> pd.DataFrame:
    """CLV to 12 significant digits, every other column as it is.

    value_model.alive_value_lookup sums each (X, T) pair's discounted periods with a BLAS matrix
    product (``steps @ factors``), whose last bit depends on the pair's row in the batch, and the
    DISTINCT pairs come back in any order: CLV may differ in its last bit between reruns (reported
    to the owner of value_model.py; a row-wise sum would be exact).
    """
    return values.assign(CLV=values["CLV"].map(lambda v: float(f"{v:.12g}")))


def holdout(project: Path) -> dict:
    (metrics,) = warehouse_rows(
        project,
        "SELECT METRICS FROM PUBLIC.CUSTOMER_VALUE_MODELS ORDER BY TRAINED_AT DESC, VERSION DESC LIMIT 1",
    )[0]
    return json.loads(metrics)["holdout"]


# --- an independent computation of the summary, from the events ------------------------------------


def expected_summary(events: pd.DataFrame, reference: date) -> pd.DataFrame:
    """x, t_x, T, mean repeat spend per customer, as issue 21 defines them, in pandas from RAW_DATA events."""
    ev = events.assign(
        TS=pd.to_datetime(events["EVENT_TS"]),
        AMT=pd.to_numeric(events["AMOUNT"], errors="coerce").fillna(0.0),
    )
    ev = ev[ev["TS"] < pd.Timestamp(reference)]
    created = (
        ev[ev["EVENT_TYPE"] == "ORDER_CREATED"]
        .groupby("ORDER_ID")
        .agg(CUSTOMER_ID=("CUSTOMER_ID", "first"), TS=("TS", "min"), GROSS=("AMT", "sum"))
    )
    cancelled = ev[ev["EVENT_TYPE"] == "ORDER_CANCELLED"].groupby("ORDER_ID")["AMT"].sum()
    returned = ev[ev["EVENT_TYPE"] == "ORDER_RETURNED"].groupby("ORDER_ID")["AMT"].sum()
    orders = created.assign(
        CANCELLED=cancelled.reindex(created.index).fillna(0.0),
        IS_CANCELLED=created.index.isin(cancelled.index),
        RETURNED=returned.reindex(created.index).fillna(0.0),
    )
    orders["NET"] = orders["GROSS"] - np.minimum(orders["CANCELLED"], orders["GROSS"]) - orders["RETURNED"]
    orders["DAY"] = orders["TS"].dt.normalize()
    rows = []
    for customer, own in orders.groupby("CUSTOMER_ID"):
        kept = own[~own["IS_CANCELLED"]]
        days = kept.groupby("DAY")["NET"].sum().sort_index()
        if len(days):
            first, last = days.index[0], days.index[-1]
        else:  # every order cancelled: a one-time buyer at the first order day
            first = last = own["DAY"].min()
        x = max(len(days) - 1, 0)
        mean = (days.iloc[1:].sum() / x) if x > 0 else np.nan
        rows.append(
            {
                "CUSTOMER_ID": customer,
                "FIRST_PURCHASE_DATE": first.date(),
                "LAST_PURCHASE_DATE": last.date(),
                "X": x,
                "T_X": (last - first).days,
                "T": (pd.Timestamp(reference) - first).days,
                "MEAN_VALUE": mean,
            }
        )
    return pd.DataFrame(rows).sort_values("CUSTOMER_ID").reset_index(drop=True)


def awkward_cdnow() -> pd.DataFrame:
    """CDNOW sample orders plus whole-order returns, cancellations and zero-value orders (deterministic)."""
    events = cdnow_events("sample").reset_index(drop=True)
    events.loc[events.index % 13 == 5, "AMOUNT"] = "0.00"  # zero-value orders
    ts = pd.to_datetime(events["EVENT_TS"])
    returns = events[events.index % 7 == 3].assign(
        EVENT_TYPE="ORDER_RETURNED",
        EVENT_ID=lambda f: f["EVENT_ID"] + "-R",
        EVENT_TS=(ts[events.index % 7 == 3] + pd.Timedelta(days=3)).dt.strftime("%Y-%m-%d %H:%M:%S"),
    )  # the whole order returned three days later: net 0, still a purchase day
    cancels = events[events.index % 11 == 4].assign(
        EVENT_TYPE="ORDER_CANCELLED",
        EVENT_ID=lambda f: f["EVENT_ID"] + "-C",
        EVENT_TS=(ts[events.index % 11 == 4] + pd.Timedelta(hours=1)).dt.strftime("%Y-%m-%d %H:%M:%S"),
    )  # cancelled: not a transaction
    return pd.concat([events, returns, cancels], ignore_index=True)


# --- the demo -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The demo after `kedro run` at FIRST_REFERENCE, then `kedro run` at the default reference date."""
    root = tmp_path_factory.mktemp("value_demo")
    project = make_project_copy(root / "project")
    try:
        run_pipeline(project, None, {"rfm_features.reference_date": FIRST_REFERENCE})
        run_pipeline(project)
        yield project
    finally:
        stop_embedded_servers(root)


def test_every_customer_with_an_order_has_a_value(demo: Path) -> None:
    customers = warehouse_rows(
        demo,
        "SELECT COUNT(DISTINCT CUSTOMER_ID) FROM PUBLIC.TRANSFORMED_DATA WHERE EVENT_TYPE = 'ORDER_CREATED'",
    )[0][0]
    value = frame(demo, VALUE)
    assert len(value) == customers == value["CUSTOMER_ID"].nunique()
    scores = value[["P_ALIVE", "EXPECTED_PURCHASES", "EXPECTED_ORDER_VALUE", "CLV"]]
    assert scores.notna().all().all()
    assert value["P_ALIVE"].between(0, 1).all() and (value["CLV"] >= 0).all()
    assert (value["EXPECTED_PURCHASES"] >= 0).all() and (value["EXPECTED_ORDER_VALUE"] >= 0).all()
    assert value["MEAN_VALUE"].isna().equals(value["X"] == 0)
    processed = frame(
        demo,
        "SELECT CUSTOMER_ID, P_ALIVE, EXPECTED_PURCHASES, EXPECTED_ORDER_VALUE, CLV FROM PUBLIC.PROCESSED_DATA",
    )
    merged = processed.merge(value, on="CUSTOMER_ID", suffixes=("", "_V"))
    assert len(merged) == len(processed) == customers
    for column in ("P_ALIVE", "EXPECTED_PURCHASES", "EXPECTED_ORDER_VALUE", "CLV"):
        assert merged[column].notna().all()
        assert (merged[column] == merged[f"{column}_V"]).all(), column
    # the summary is at the reference date recency uses
    assert set(value["REFERENCE_DATE"].astype(str)) == {
        str(r[0]) for r in warehouse_rows(demo, "SELECT DISTINCT REFERENCE_DATE FROM PUBLIC.PROCESSED_DATA")
    }


def test_segments_carry_their_value(demo: Path) -> None:
    value = frame(demo, "SELECT SEGMENT_ID, P_ALIVE, CLV FROM PUBLIC.PROCESSED_DATA")
    total = value["CLV"].sum()
    for table in ("SEGMENT_PROFILES", "SEGMENT_SUMMARY"):
        where = (
            ""
            if table == "SEGMENT_PROFILES"
            else " WHERE RUN_ID = (SELECT MAX(RUN_ID) FROM PUBLIC.PROCESSED_DATA)"
        )
        rows = frame(
            demo,
            f"SELECT SEGMENT_ID, MEDIAN_P_ALIVE, TOTAL_CLV, MEDIAN_CLV, EXPECTED_REVENUE_SHARE FROM PUBLIC.{table}{where}",
        ).set_index("SEGMENT_ID")
        expected = value.groupby("SEGMENT_ID").agg(
            MEDIAN_P_ALIVE=("P_ALIVE", "median"), TOTAL_CLV=("CLV", "sum"), MEDIAN_CLV=("CLV", "median")
        )
        assert sorted(rows.index) == sorted(expected.index), table
        for column in ("MEDIAN_P_ALIVE", "MEDIAN_CLV"):
            np.testing.assert_allclose(
                rows[column], expected.loc[rows.index, column], rtol=1e-6, err_msg=table
            )
        np.testing.assert_allclose(rows["TOTAL_CLV"], expected.loc[rows.index, "TOTAL_CLV"], atol=0.01)
        np.testing.assert_allclose(
            rows["EXPECTED_REVENUE_SHARE"], expected.loc[rows.index, "TOTAL_CLV"] / total, rtol=1e-6
        )
    history = frame(
        demo,
        "SELECT SNAPSHOT_DATE, COUNT(*) AS N, COUNT(P_ALIVE) AS A, COUNT(CLV) AS C "
        "FROM PUBLIC.SEGMENT_HISTORY GROUP BY 1 ORDER BY 1",
    )
    assert len(history) == 2 and (history["N"] == history["A"]).all() and (history["N"] == history["C"]).all()


def test_the_holdout_report_is_stored_with_the_version(demo: Path) -> None:
    report = holdout(demo)
    assert not report.get("skipped")
    for key in (
        "predicted_purchases",
        "actual_purchases",
        "total_error",
        "correlation",
        "mae",
        "large_error",
    ):
        assert key in report, key
    assert report["actual_purchases"] > 0 and report["predicted_purchases"] > 0
    assert -1 <= report["correlation"] <= 1 and report["mae"] >= 0
    assert math.isclose(
        report["total_error"],
        (report["predicted_purchases"] - report["actual_purchases"]) / report["actual_purchases"],
        rel_tol=1e-4,
    )
    assert report["large_error"] == (abs(report["total_error"]) > 0.25)
    # the actual holdout purchases, counted again in pandas from the events
    ref = date.fromisoformat(report["holdout_end"])
    cutoff = date.fromisoformat(report["calibration_end"])
    assert (ref - cutoff).days == 180
    events = frame(
        demo, "SELECT CUSTOMER_ID, ORDER_ID, EVENT_TYPE, EVENT_TS, AMOUNT FROM PUBLIC.TRANSFORMED_DATA"
    )
    created = (
        events[events["EVENT_TYPE"] == "ORDER_CREATED"]
        .groupby("ORDER_ID")
        .agg(CUSTOMER_ID=("CUSTOMER_ID", "first"), TS=("EVENT_TS", "min"))
    )
    cancelled = set(events.loc[events["EVENT_TYPE"] == "ORDER_CANCELLED", "ORDER_ID"])
    kept = created[~created.index.isin(cancelled)].assign(DAY=lambda f: pd.to_datetime(f["TS"]).dt.date)
    before = set(created.loc[pd.to_datetime(created["TS"]).dt.date < cutoff, "CUSTOMER_ID"])
    in_period = kept[(kept["DAY"] >= cutoff) & (kept["DAY"] < ref) & kept["CUSTOMER_ID"].isin(before)]
    assert report["actual_purchases"] == in_period.groupby("CUSTOMER_ID")["DAY"].nunique().sum()
    assert report["calibration_customers"] == len(before)
    frequencies = report["by_frequency"]
    assert sum(r["customers"] for r in frequencies) == len(before)
    assert math.isclose(
        sum(r["actual"] * r["customers"] for r in frequencies), report["actual_purchases"], rel_tol=1e-6
    )
    deciles = report["by_p_alive_decile"]
    assert [r["decile"] for r in deciles] == list(range(1, 11))
    assert all(0 <= r["actual_purchase_rate"] <= 1 for r in deciles)
    tracking = report["tracking"]
    assert tracking[-1]["day"] == ref.isoformat() and tracking[-1]["period"] == "holdout"
    assert all(
        a["actual"] <= b["actual"] and a["predicted"] <= b["predicted"]
        for a, b in zip(tracking, tracking[1:])
    )


def test_segment_outcomes_of_the_first_snapshot_match_the_events(demo: Path) -> None:
    outcomes = frame(demo, "SELECT * FROM PUBLIC.SEGMENT_OUTCOMES ORDER BY SEGMENT_ID")
    assert set(outcomes["SNAPSHOT_DATE"].astype(str)) == {FIRST_REFERENCE}
    start = date.fromisoformat(FIRST_REFERENCE)
    end = start + timedelta(days=180)
    assert set(outcomes["PERIOD_END"].astype(str)) == {end.isoformat()}
    members = frame(
        demo,
        f"SELECT CUSTOMER_ID, SEGMENT_ID, P_ALIVE, CLV FROM PUBLIC.SEGMENT_HISTORY WHERE SNAPSHOT_DATE = '{FIRST_REFERENCE}'",
    )
    events = frame(
        demo, "SELECT CUSTOMER_ID, ORDER_ID, EVENT_TYPE, EVENT_TS, AMOUNT FROM PUBLIC.TRANSFORMED_DATA"
    )
    events["AMOUNT"] = events["AMOUNT"].astype(float).fillna(0.0)
    orders = (
        events[events["EVENT_TYPE"] == "ORDER_CREATED"]
        .groupby("ORDER_ID")
        .agg(CUSTOMER_ID=("CUSTOMER_ID", "first"), TS=("EVENT_TS", "min"), GROSS=("AMOUNT", "sum"))
    )
    per_type = events.pivot_table(index="ORDER_ID", columns="EVENT_TYPE", values="AMOUNT", aggfunc="sum")
    orders["CANCELLED"] = (
        per_type.get("ORDER_CANCELLED", pd.Series(dtype=float)).reindex(orders.index).fillna(0)
    )
    orders["RETURNED"] = (
        per_type.get("ORDER_RETURNED", pd.Series(dtype=float)).reindex(orders.index).fillna(0)
    )
    orders["IS_CANCELLED"] = orders.index.isin(
        events.loc[events["EVENT_TYPE"] == "ORDER_CANCELLED", "ORDER_ID"]
    )
    orders["NET"] = orders["GROSS"] - np.minimum(orders["CANCELLED"], orders["GROSS"]) - orders["RETURNED"]
    orders["DAY"] = pd.to_datetime(orders["TS"]).dt.date
    window = orders[(orders["DAY"] >= start) & (orders["DAY"] < end)]
    txn = window[~window["IS_CANCELLED"]].groupby("CUSTOMER_ID")["DAY"].nunique()
    net = window.groupby("CUSTOMER_ID")["NET"].sum()
    members = members.assign(
        TXN=members["CUSTOMER_ID"].map(txn).fillna(0), NET=members["CUSTOMER_ID"].map(net).fillna(0.0)
    )
    expected = members.groupby("SEGMENT_ID").agg(
        CUSTOMERS=("CUSTOMER_ID", "count"),
        ACTUAL_PURCHASES=("TXN", "sum"),
        ACTUAL_NET_REVENUE=("NET", "sum"),
        REPEAT_BUYER_SHARE=("TXN", lambda s: (s > 0).mean()),
        PREDICTED_P_ALIVE=("P_ALIVE", "mean"),
        PREDICTED_CLV=("CLV", "sum"),
    )
    got = outcomes.set_index("SEGMENT_ID")
    assert list(got.index) == list(expected.index)
    assert (got["CUSTOMERS"] == expected["CUSTOMERS"]).all()
    assert (got["ACTUAL_PURCHASES"] == expected["ACTUAL_PURCHASES"]).all()
    np.testing.assert_allclose(got["ACTUAL_NET_REVENUE"], expected["ACTUAL_NET_REVENUE"], atol=0.011)
    np.testing.assert_allclose(got["REPEAT_BUYER_SHARE"], expected["REPEAT_BUYER_SHARE"], rtol=1e-9)
    np.testing.assert_allclose(got["PREDICTED_P_ALIVE"], expected["PREDICTED_P_ALIVE"], rtol=1e-5)
    np.testing.assert_allclose(got["PREDICTED_CLV"], expected["PREDICTED_CLV"], atol=0.011)


def expected_in_window(params: dict, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, t: float) -> np.ndarray:
    """E[Y(t) | x, t_x, T] by FHL05 eq. 10 as printed, with scipy.special.hyp2f1 (no Euler transform, no
    project code): P(alive) times the purchases of a customer alive at T."""
    from scipy import special

    r, alpha, a, b = (params[k] for k in ("r", "alpha", "a", "b"))
    ratio = (alpha + T) / (alpha + T + t)
    alive_part = (
        (a + b + x - 1)
        / (a - 1)
        * (1 - ratio ** (r + x) * special.hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t)))
    )
    odds = np.where(x > 0, a / np.maximum(b + x - 1, 1e-300) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return alive_part / (1 + odds)


def test_segment_outcomes_predict_the_window_they_measure(demo: Path) -> None:
    """PREDICTED_PURCHASES of a segment = sum over its members of E[Y(180)] at the snapshot (not the
    365-day horizon): computed here from the events (summary at the snapshot) and the parameters of the
    model that scored that snapshot, with scipy; PREDICTED_NET_REVENUE the same times the Gamma-Gamma mean."""
    outcomes = frame(demo, "SELECT * FROM PUBLIC.SEGMENT_OUTCOMES ORDER BY SEGMENT_ID").set_index(
        "SEGMENT_ID"
    )
    assert (outcomes["PERIOD_DAYS"] == 180).all() and (outcomes["PREDICTION_HORIZON_DAYS"] == 180).all()
    models = warehouse_rows(demo, "SELECT PARAMS FROM PUBLIC.CUSTOMER_VALUE_MODELS WHERE STATUS = 'READY'")
    (params,) = [
        p
        for p in (json.loads(row[0]) for row in models)
        if p["settings"]["reference_date"] == FIRST_REFERENCE
    ]
    bgnbd, gg = params["bgnbd"]["params"], params["gamma_gamma"]["params"]
    events = frame(
        demo, "SELECT CUSTOMER_ID, ORDER_ID, EVENT_TYPE, EVENT_TS, AMOUNT FROM PUBLIC.TRANSFORMED_DATA"
    )
    # the stored daily spend nets an order's returns into its order day whenever they were recorded, and
    # the snapshot was summarised from it: returns recorded after the snapshot count here too
    snapshot_ts = pd.Timestamp(FIRST_REFERENCE) - pd.Timedelta(seconds=1)
    late_return = (events["EVENT_TYPE"] == "ORDER_RETURNED") & (
        pd.to_datetime(events["EVENT_TS"]) > snapshot_ts
    )
    events.loc[late_return, "EVENT_TS"] = str(snapshot_ts)
    summary = expected_summary(events, date.fromisoformat(FIRST_REFERENCE)).set_index("CUSTOMER_ID")
    members = frame(
        demo,
        "SELECT CUSTOMER_ID, SEGMENT_ID, OUTCOME_DAYS FROM PUBLIC.SEGMENT_HISTORY "
        f"WHERE SNAPSHOT_DATE = '{FIRST_REFERENCE}'",
    ).set_index("CUSTOMER_ID")
    assert (members["OUTCOME_DAYS"] == 180).all()
    members = members.join(summary, how="left")
    assert members["X"].notna().all()
    x, t_x, T = (members[c].to_numpy(float) for c in ("X", "T_X", "T"))
    purchases = expected_in_window(bgnbd, x, t_x, T, 180.0)
    mean = np.where(x > 0, np.maximum(np.nan_to_num(members["MEAN_VALUE"].to_numpy(float)), 0.0), 0.0)
    order_value = (gg["p"] * gg["gamma"] + gg["p"] * x * mean) / (gg["p"] * x + gg["q"] - 1)
    members = members.assign(PURCHASES=purchases, SPEND=purchases * order_value)
    expected = members.groupby("SEGMENT_ID")[["PURCHASES", "SPEND"]].sum()
    assert list(outcomes.index) == list(expected.index)
    np.testing.assert_allclose(outcomes["PREDICTED_PURCHASES"], expected["PURCHASES"], rtol=1e-6)
    np.testing.assert_allclose(outcomes["PREDICTED_NET_REVENUE"], expected["SPEND"], rtol=1e-6, atol=0.006)
    # and it is not the 365-day horizon's figure that was compared before
    horizon = frame(
        demo,
        "SELECT SEGMENT_ID, SUM(EXPECTED_PURCHASES) AS H FROM PUBLIC.SEGMENT_HISTORY "
        f"WHERE SNAPSHOT_DATE = '{FIRST_REFERENCE}' GROUP BY 1 ORDER BY 1",
    ).set_index("SEGMENT_ID")
    assert (horizon["H"] > outcomes["PREDICTED_PURCHASES"] * 1.2).all()


def test_rerun_then_daily_keep_value_exact_and_incremental_equals_full(demo: Path) -> None:
    value = frame(demo, VALUE)
    outcomes = frame(demo, "SELECT * FROM PUBLIC.SEGMENT_OUTCOMES ORDER BY SEGMENT_ID")
    run_pipeline(demo)  # the same data: a refit on the same sample
    pd.testing.assert_frame_equal(stable(frame(demo, VALUE)), stable(value), check_exact=True)
    pd.testing.assert_frame_equal(
        frame(demo, "SELECT * FROM PUBLIC.SEGMENT_OUTCOMES ORDER BY SEGMENT_ID"), outcomes, check_exact=True
    )
    versions = warehouse_rows(demo, "SELECT COUNT(*) FROM PUBLIC.CUSTOMER_VALUE_MODELS")[0][0]

    run_pipeline(demo, "simulate_days", {"simulate_days.days": 3})
    run_pipeline(demo, "daily", AS_OF)
    (mode,) = warehouse_rows(demo, "SELECT MODE FROM PUBLIC.CUSTOMER_AGGREGATES_STATE")[0]
    assert mode == "incremental"
    daily = frame(demo, VALUE)
    customers = warehouse_rows(
        demo,
        "SELECT COUNT(DISTINCT CUSTOMER_ID) FROM PUBLIC.TRANSFORMED_DATA WHERE EVENT_TYPE = 'ORDER_CREATED'",
    )[0][0]
    assert len(daily) == customers and daily[["P_ALIVE", "CLV"]].notna().all().all()
    assert daily["REFERENCE_DATE"].iloc[0] > value["REFERENCE_DATE"].iloc[0]
    # the segmentation model was kept (retrain_policy never): so was the value model, and its holdout report
    assert warehouse_rows(demo, "SELECT COUNT(*) FROM PUBLIC.CUSTOMER_VALUE_MODELS")[0][0] == versions
    assert not holdout(demo).get("skipped")
    assert warehouse_rows(demo, "SELECT COUNT(*) FROM PUBLIC.SEGMENT_OUTCOMES")[0][0] == len(outcomes)
    assert warehouse_rows(demo, "SELECT COUNT(P_ALIVE) FROM PUBLIC.PROCESSED_DATA")[0][0] == customers

    # the full recompute of the aggregates from every event gives the same summary
    incremental = frame(demo, SUMMARY)
    run_pipeline(demo, "rfm_features")
    assert warehouse_rows(demo, "SELECT MODE FROM PUBLIC.CUSTOMER_AGGREGATES_STATE")[0][0] == "rebuild"
    run_pipeline(demo, "customer_value")
    pd.testing.assert_frame_equal(frame(demo, SUMMARY), incremental, check_exact=True)


# --- a public history -----------------------------------------------------------------------------


def test_summary_equals_pandas_on_cdnow_with_returns_cancellations_and_zero_orders(tmp_path: Path) -> None:
    events = awkward_cdnow()
    path = tmp_path / "events.csv"
    events.to_csv(path, index=False)
    project = make_project_copy(tmp_path / "project")
    try:
        run_pipeline(project, "load_events", {**USER_DATA, "events_file": str(path)})
        for pipeline in ("ingestion", "rfm_features", "customer_value"):
            run_pipeline(project, pipeline, USER_DATA)
        got = frame(project, SUMMARY)
        reference = date.fromisoformat(str(got["REFERENCE_DATE"].iloc[0])[:10])
        assert reference == pd.to_datetime(events["EVENT_TS"]).max().date() + timedelta(days=1)
        expected = expected_summary(events, reference)
        assert len(got) == len(expected) == events["CUSTOMER_ID"].nunique()
        got = got.drop(columns=["REFERENCE_DATE"])
        for column in ("FIRST_PURCHASE_DATE", "LAST_PURCHASE_DATE"):
            got[column] = pd.to_datetime(got[column]).dt.date
        pd.testing.assert_frame_equal(
            got.drop(columns=["MEAN_VALUE"]),
            expected.drop(columns=["MEAN_VALUE"]),
            check_dtype=False,
        )
        np.testing.assert_allclose(got["MEAN_VALUE"], expected["MEAN_VALUE"], rtol=1e-12, atol=1e-9)
        assert (expected["X"] == 0).sum() > 1000  # CDNOW: about half the customers bought once
        value = frame(project, VALUE)
        assert value[["P_ALIVE", "CLV"]].notna().all().all() and value["P_ALIVE"].between(0, 1).all()
        assert (value["CLV"] >= 0).all()
    finally:
        stop_embedded_servers(tmp_path)


# --- a history the value model cannot be fitted on ------------------------------------------------


def regular_buyers_events(n: int = 300, seed: int = 4) -> pd.DataFrame:
    """Every customer buys every d days (10..40) from their first day up to the end: nobody stops, so
    BG/NBD has no dropout signal. Amounts vary; the events follow the RAW_DATA contract."""
    rng = np.random.default_rng(seed)
    rows = []
    origin = pd.Timestamp("2025-01-01 12:00:00")
    for i in range(n):
        start, every = int(rng.integers(0, 100)), int(rng.integers(10, 41))
        for k, day in enumerate(range(start, 365, every)):
            order = f"R-{i}-{k}"
            rows.append(
                {
                    "EVENT_ID": f"E-{order}",
                    "EVENT_TYPE": "ORDER_CREATED",
                    "EVENT_TS": (origin + pd.Timedelta(days=day)).strftime("%Y-%m-%d %H:%M:%S"),
                    "CUSTOMER_ID": f"C-{i:04d}",
                    "ORDER_ID": order,
                    "PRODUCT_ID": f"P-{k % 7}",
                    "CATEGORY": ("books", "music", "games")[i % 3],
                    "QUANTITY": "1",
                    "AMOUNT": f"{float(rng.gamma(3.0, 15.0)) + 1:.2f}",
                    "CHANNEL": ("web", "store")[i % 2],
                }
            )
    return pd.DataFrame(rows)


def test_a_failed_fit_leaves_the_segments_and_says_why_the_value_is_missing(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    regular_buyers_events().to_csv(path, index=False)
    project = make_project_copy(tmp_path / "project")
    try:
        run_pipeline(project, "load_events", {**USER_DATA, "events_file": str(path)})
        with collect_records("customer_segmentation.pipelines.customer_value.nodes", logging.WARNING) as seen:
            run_pipeline(project, None, USER_DATA)  # does not fail: segments are the main product
        (warning,) = [r.getMessage() for r in seen if "Customer value is MISSING" in r.getMessage()]
        assert "BG/NBD fit ran to the edge of the model" in warning and "no dropout signal" in warning
        assert "What to do" in warning and "then run `kedro run`" in warning
        segments = warehouse_rows(
            project, "SELECT COUNT(*), COUNT(SEGMENT_LABEL) FROM PUBLIC.PROCESSED_DATA"
        )[0]
        assert segments[0] == segments[1] == 300
        value = frame(
            project,
            "SELECT P_ALIVE, CLV, OUTCOME_EXPECTED_PURCHASES, VALUE_MODEL_VERSION, VALUE_MISSING_REASON "
            "FROM PUBLIC.CUSTOMER_VALUE",
        )
        assert len(value) == 300  # every customer is there, saying why its value is missing
        assert (
            value[["P_ALIVE", "CLV", "OUTCOME_EXPECTED_PURCHASES", "VALUE_MODEL_VERSION"]].isna().all().all()
        )
        reasons = set(value["VALUE_MISSING_REASON"])
        assert len(reasons) == 1 and "The customer-value fit failed" in reasons.pop()
        ((status, metrics),) = warehouse_rows(
            project, "SELECT STATUS, METRICS FROM PUBLIC.CUSTOMER_VALUE_MODELS"
        )
        assert status == "FAILED" and "no dropout signal" in json.loads(metrics)["failed"]
        (saved,) = (project / "data" / "08_reporting" / "value_tracking.json").glob("*/value_tracking.json")
        chart = json.loads(saved.read_text())  # a versioned dataset: one folder per run
        assert "the value model fit failed" in chart["layout"]["title"]["text"]
    finally:
        stop_embedded_servers(tmp_path)
