"""RFM features on a small hand-made event set with known answers (computed in the warehouse)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from customer_segmentation.pipelines.rfm_features.nodes import (
    compute_customer_features,
    summarise_rfm_segments,
)

EVENTS = [
    # customer A: three orders, one return, one cancelled order, three channels, three categories
    ("e1", "ORDER_CREATED", "2026-01-01 10:00:00", "A", "O1", "p1", "X", 1, 100.00, "web"),
    ("e2", "ORDER_CREATED", "2026-01-01 10:00:00", "A", "O1", "p2", "Y", 2, 50.00, "web"),
    ("e3", "ORDER_CREATED", "2026-03-01 09:00:00", "A", "O2", "p1", "X", 1, 200.00, "app"),
    ("e4", "ORDER_RETURNED", "2026-03-10 12:00:00", "A", "O2", "p1", "X", 1, 50.00, "app"),
    ("e5", "ORDER_CREATED", "2026-03-20 18:00:00", "A", "O3", "p3", "Z", 1, 80.00, "store"),
    ("e6", "ORDER_CANCELLED", "2026-03-21 08:00:00", "A", "O3", None, None, None, 80.00, "store"),
    ("e7", "PAGE_VIEW", "2026-03-25 08:00:00", "A", None, "p1", "X", None, None, "web"),
    (
        "e8",
        "ORDER_CREATED",
        "2026-04-05 08:00:00",
        "A",
        "O9",
        "p1",
        "X",
        1,
        999.00,
        "web",
    ),  # after the reference date
    # customer B: one order long ago, marketplace only
    ("e9", "ORDER_CREATED", "2025-06-01 15:00:00", "B", "O4", "p1", "X", 1, 40.00, "marketplace"),
    # customer C: browses, never buys
    ("e10", "PAGE_VIEW", "2026-03-01 08:00:00", "C", None, "p1", "X", None, None, "web"),
]
PARAMS = {
    "reference_date": "2026-04-01",
    "trend_window_days": 90,
    "channels": ["web", "app", "store", "marketplace"],
}


def _literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def _event_table(session: Any, name: str, rows: list[tuple[Any, ...]]) -> Any:
    """Table ``name`` of the event contract's columns holding ``rows``."""
    session.sql(
        f"CREATE TABLE {name} (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS TIMESTAMP_NTZ, CUSTOMER_ID VARCHAR, "
        "ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY NUMBER(10,0), AMOUNT NUMBER(12,2), CHANNEL VARCHAR)"
    ).collect()
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    session.sql(f"INSERT INTO {name} VALUES {values}").collect()
    return session.table(name)


def _web_order(i: int, k: int, day: int, customer: str, amount: float) -> tuple[Any, ...]:
    """Order k of the i-th generated customer: one web line on 2026-02-<day>."""
    return (
        f"e{i}_{k}",
        "ORDER_CREATED",
        f"2026-02-{day:02d} 10:00:00",
        customer,
        f"O{i}_{k}",
        "p",
        "X",
        1,
        amount,
        "web",
    )


@pytest.fixture
def events(warehouse_session: Any) -> Any:
    return _event_table(warehouse_session, "EVENTS", EVENTS)


@pytest.fixture
def features(events: Any) -> pd.DataFrame:
    frame = compute_customer_features(events, PARAMS).to_pandas()
    return frame.set_index("CUSTOMER_ID")


def test_one_row_per_customer_with_an_order(features: pd.DataFrame) -> None:
    assert sorted(features.index) == ["A", "B"]


def test_customer_with_returns_cancellations_and_channels(features: pd.DataFrame) -> None:
    a = features.loc["A"]
    assert a["RECENCY_DAYS"] == 12  # last order 2026-03-20, reference 2026-04-01
    assert a["FREQUENCY"] == 2  # O1, O2 (O3 cancelled; O9 after the reference date)
    assert a["MONETARY"] == pytest.approx(300.0)  # 430 ordered - 80 cancelled - 50 returned
    assert a["AVG_ORDER_VALUE"] == pytest.approx(150.0)
    assert a["TENURE_DAYS"] == 90
    assert a["MEAN_DAYS_BETWEEN_ORDERS"] == pytest.approx(59.0)  # 2026-01-01 -> 2026-03-01, one gap
    assert a["DISTINCT_CATEGORIES"] == 3
    assert a["SHARE_WEB"] == pytest.approx(150 / 430)
    assert a["SHARE_APP"] == pytest.approx(200 / 430)
    assert a["SHARE_STORE"] == pytest.approx(80 / 430)
    assert a["SHARE_MARKETPLACE"] == pytest.approx(0.0)
    assert a["RETURN_RATE"] == pytest.approx(50 / 430)
    assert a["CANCELLATION_RATE"] == pytest.approx(1 / 3)
    assert a["SPEND_LAST_90D"] == pytest.approx(300.0)
    assert a["SPEND_PREV_90D"] == pytest.approx(0.0)
    assert a["SPEND_TREND"] == pytest.approx(1.0)


def test_one_order_customer(features: pd.DataFrame) -> None:
    b = features.loc["B"]
    assert b["RECENCY_DAYS"] == 304
    assert b["FREQUENCY"] == 1
    assert b["MONETARY"] == pytest.approx(40.0)
    assert b["AVG_ORDER_VALUE"] == pytest.approx(40.0)
    assert pd.isna(b["MEAN_DAYS_BETWEEN_ORDERS"])
    assert b["SHARE_MARKETPLACE"] == pytest.approx(1.0)
    assert b["RETURN_RATE"] == 0 and b["CANCELLATION_RATE"] == 0
    assert b["SPEND_TREND"] == 0


def test_rfm_scores_rank_recent_frequent_big_spenders_higher(features: pd.DataFrame) -> None:
    a, b = features.loc["A"], features.loc["B"]
    assert a["R_SCORE"] > b["R_SCORE"] and a["F_SCORE"] > b["F_SCORE"] and a["M_SCORE"] > b["M_SCORE"]
    assert set(features["RFM_SEGMENT"]) <= {
        "Champions",
        "Loyal customers",
        "Potential loyalists",
        "New customers",
        "Promising",
        "Need attention",
        "About to sleep",
        "Cannot lose them",
        "At risk",
        "Hibernating",
        "Lost",
    }
    assert a["RFM_SCORE"] == f"{a['R_SCORE']}{a['F_SCORE']}{a['M_SCORE']}"


def test_reference_date_defaults_to_day_after_latest_event(events: Any) -> None:
    frame = (
        compute_customer_features(events, {**PARAMS, "reference_date": None})
        .to_pandas()
        .set_index("CUSTOMER_ID")
    )
    assert str(frame.loc["A", "REFERENCE_DATE"])[:10] == "2026-04-06"
    assert frame.loc["A", "FREQUENCY"] == 3  # O9 now counts


def test_segment_summary_is_aggregated_in_the_warehouse(events: Any) -> None:
    summary = summarise_rfm_segments(compute_customer_features(events, PARAMS))
    assert summary["CUSTOMERS"].sum() == 2
    assert summary["CUSTOMER_SHARE"].sum() == pytest.approx(1.0)


def _ntile(order: pd.DataFrame, buckets: int = 5) -> pd.Series:
    """NTILE(buckets) over the rows in the given order: the first n % buckets tiles hold one row more."""
    n = len(order)
    sizes = [n // buckets + (1 if b < n % buckets else 0) for b in range(buckets)]
    tiles = [b + 1 for b, size in enumerate(sizes) for _ in range(size)]
    return pd.Series(tiles, index=order["CUSTOMER_ID"].to_numpy())


def test_rfm_scores_equal_pandas_quintiles_with_heavy_ties(
    warehouse_session: Any,
) -> None:
    """257 customers in few distinct (recency, frequency, spend) values: ties broken by CUSTOMER_ID.

    Checked against an independent pandas NTILE.
    """
    rows = []
    for i in range(257):
        cid = f"C{(i * 7919) % 1000:04d}"  # ids not in insertion order
        orders = 1 + i % 3
        for k in range(orders):
            rows.append(_web_order(i, k, 1 + (i % 4) * 5 + k, cid, 10.0 * (1 + i % 2)))
    _event_table(warehouse_session, "TIED_EVENTS", rows)
    compute_customer_features(warehouse_session.table("TIED_EVENTS"), PARAMS).write.save_as_table(
        "TIED_FEATURES", mode="overwrite"
    )
    # rows in no particular order: the aggregates downstream are exact (customer_segmentation.exact)
    stored = (
        warehouse_session.table("TIED_FEATURES").to_pandas().sort_values("CUSTOMER_ID", ignore_index=True)
    )
    assert len(stored) == 257 and stored["CUSTOMER_ID"].is_unique

    r = _ntile(stored.sort_values(["RECENCY_DAYS", "CUSTOMER_ID"], ascending=[False, True]))
    f = _ntile(stored.sort_values(["FREQUENCY", "MONETARY", "CUSTOMER_ID"]))
    m = _ntile(stored.sort_values(["MONETARY", "CUSTOMER_ID"]))
    by_id = stored.set_index("CUSTOMER_ID")
    assert (by_id["R_SCORE"] == r.reindex(by_id.index)).all()
    assert (by_id["F_SCORE"] == f.reindex(by_id.index)).all()
    assert (by_id["M_SCORE"] == m.reindex(by_id.index)).all()
    assert stored["RECENCY_DAYS"].nunique() <= 12 and stored["MONETARY"].nunique() <= 6  # heavy ties indeed


def test_rfm_treemap_boxes_are_the_segments_under_one_root() -> None:
    """Area = customers (the root is their sum), colour = revenue share (the root: the customer-weighted mean)."""
    from customer_segmentation.pipelines.rfm_features.nodes import plot_rfm_treemap

    summary = pd.DataFrame(
        {
            "RFM_SEGMENT": ["Champions", "Lost", "At risk"],
            "CUSTOMERS": [100, 200, 300],
            "REVENUE": [8e4, 0.0, 2e4],
        }
    )
    summary["CUSTOMER_SHARE"] = summary["CUSTOMERS"] / 600
    summary["REVENUE_SHARE"] = summary["REVENUE"] / 1e5
    (trace,) = plot_rfm_treemap(summary).data
    assert list(trace.labels) == ["All customers", "Champions", "Lost", "At risk"]
    assert list(trace.parents) == ["", "All customers", "All customers", "All customers"]
    assert list(trace.values) == [600.0, 100.0, 200.0, 300.0] and trace.branchvalues == "total"
    assert list(trace.marker.colors) == pytest.approx([(0.8 * 100 + 0.2 * 300) / 600, 0.8, 0.0, 0.2])
    assert trace.customdata[1] == pytest.approx([8e4, 100 / 600])


def test_distinct_categories_leave_out_null_and_channel_spend_counts_every_line(
    warehouse_session: Any,
) -> None:
    """A line without a category adds no category (as COUNT(DISTINCT) would) but its spend counts."""
    rows = [
        ("n1", "ORDER_CREATED", "2026-03-01 10:00:00", "N", "O1", "p1", None, 1, 30.00, "web"),
        ("n2", "ORDER_CREATED", "2026-03-01 10:00:00", "N", "O1", "p2", "X", 1, 20.00, "app"),
        ("n3", "ORDER_CREATED", "2026-03-02 10:00:00", "N", "O2", "p3", "X", 1, 10.00, "web"),
        ("m1", "ORDER_CREATED", "2026-03-03 10:00:00", "M", "O3", "p1", None, 2, 5.00, "store"),
    ]
    warehouse_session.sql(
        "CREATE OR REPLACE TABLE NULL_CATEGORY_EVENTS (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS TIMESTAMP_NTZ, "
        "CUSTOMER_ID VARCHAR, ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY NUMBER(10,0), "
        "AMOUNT NUMBER(12,2), CHANNEL VARCHAR)"
    ).collect()
    values = ", ".join("(" + ", ".join(_literal(v) for v in row) + ")" for row in rows)
    warehouse_session.sql(f"INSERT INTO NULL_CATEGORY_EVENTS VALUES {values}").collect()
    frame = compute_customer_features(warehouse_session.table("NULL_CATEGORY_EVENTS"), PARAMS).to_pandas()
    frame = frame.set_index("CUSTOMER_ID")
    assert frame.loc["N", "DISTINCT_CATEGORIES"] == 1 and frame.loc["M", "DISTINCT_CATEGORIES"] == 0
    assert frame.loc["N", "SHARE_WEB"] == pytest.approx(40 / 60) and frame.loc[
        "N", "SHARE_APP"
    ] == pytest.approx(20 / 60)
    assert frame.loc["M", "SHARE_STORE"] == pytest.approx(1.0)


def test_scores_from_stored_aggregates_come_from_bins_and_equal_the_ntile_windows(
    warehouse_session: Any,
) -> None:
    """The stored-aggregates path (daily, full run) computes the scores from counts per bin
    (tiles.py), the events path by NTILE windows: the same scores on ties and one-order customers."""
    import random
    from datetime import date

    from customer_segmentation.pipelines.rfm_features.nodes import (
        aggregate_customers,
        features_from_aggregates,
    )
    from customer_segmentation.pipelines.rfm_features.params import RfmFeaturesParams

    rng = random.Random(5)
    rows = []
    for i in range(211):
        cid = f"K{rng.randrange(10**5):05d}-{i}"
        for k in range(rng.choice([1, 1, 1, 2, 3, 8])):
            day = rng.choice([1, 2, 2, 3, 15, 28])
            rows.append(_web_order(i, k, day, cid, rng.choice([10.0, 10.0, 25.5, 99.99, 0.0])))
    _event_table(warehouse_session, "RANDOM_EVENTS", rows)
    params = RfmFeaturesParams.of(PARAMS)
    customers, daily = aggregate_customers(
        warehouse_session.table("RANDOM_EVENTS"), ["web", "app", "store", "marketplace"]
    )
    customers.write.save_as_table("AGG_T", mode="overwrite")
    daily.write.save_as_table("DAILY_T", mode="overwrite")
    args = (warehouse_session.table("AGG_T"), warehouse_session.table("DAILY_T"), date(2026, 4, 1), params)
    binned, windows = features_from_aggregates(*args, stored=True), features_from_aggregates(*args)
    assert "NTILE" not in " ".join(binned.queries["queries"]).upper()
    assert "NTILE" in " ".join(windows.queries["queries"]).upper()
    ours = binned.to_pandas().sort_values("CUSTOMER_ID", ignore_index=True)
    theirs = windows.to_pandas().sort_values("CUSTOMER_ID", ignore_index=True)
    assert len(ours) == 211 and list(ours.columns) == list(theirs.columns)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)
    # and both equal an independent pandas NTILE
    m = _ntile(ours.sort_values(["MONETARY", "CUSTOMER_ID"]))
    assert (ours.set_index("CUSTOMER_ID")["M_SCORE"] == m.reindex(ours["CUSTOMER_ID"]).to_numpy()).all()
