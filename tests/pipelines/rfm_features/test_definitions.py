"""Pinned definitions: exact R/F/M scores, window boundaries, cancellations and returns.

Every expected value below was worked out by hand from the README's definitions (not produced by
running the code), so a change of definition (4 tiles instead of 5, another tie-break, a window
boundary moved by one comparison, no cap on cancellations) fails here and has to be made on purpose.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from customer_segmentation.pipelines.rfm_features.nodes import compute_customer_features

REFERENCE = "2026-04-01"
PARAMS = {"reference_date": REFERENCE, "trend_window_days": 90, "channels": ["web"]}

#: customer: (days before the reference date of the LAST order, orders, amount of each order)
#: Orders are one day apart, ending on the last one; each customer has monetary = orders x amount.
POPULATION = {
    "P01": (400, 1, 50),
    "P02": (400, 1, 10),
    "P03": (400, 1, 10),
    "P04": (400, 2, 10),
    "P05": (400, 2, 25),
    "P06": (400, 3, 10),
    "P07": (400, 3, 10),
    "P08": (300, 3, 20),
    "P09": (290, 5, 10),
    "P10": (280, 5, 10),
    "P11": (270, 8, 10),
    "P12": (260, 8, 10),
    "P13": (200, 1, 40),
    "P14": (190, 2, 10),
    "P15": (180, 2, 5),
    "P16": (170, 3, 5),
    "P17": (160, 5, 4),
    "P18": (150, 8, 5),
    "P19": (100, 2, 10),
    "P20": (90, 2, 10),
    "P21": (80, 3, 10),
    "P22": (70, 5, 20),
    "P23": (60, 5, 40),
    "P24": (50, 8, 50),
    "P25": (40, 1, 30),
    "P26": (30, 1, 10),
    "P27": (20, 1, 30),
    "P28": (10, 1, 10),
    "P29": (5, 3, 30),
    "P30": (1, 5, 10),
}
#: 30 customers -> five tiles of exactly 6.
#: R: recency descending, ties by customer id: the seven at 400 days put P01-P06 in R1 and P07 in R2.
#: F: orders, then monetary, then id: of P04, P14, P19, P20 (2 orders, 20 each) P20 is 13th -> F3.
#: M: monetary, then id: of P06, P07, P21, P25, P27 (30 each) P06 is 12th -> M2, P07 13th -> M3.
EXPECTED = {  # customer: (R, F, M, RFM segment)
    "P01": (1, 2, 4, "Lost"),
    "P02": (1, 1, 1, "Lost"),
    "P03": (1, 1, 1, "Lost"),
    "P04": (1, 2, 2, "Lost"),
    "P05": (1, 3, 4, "At risk"),
    "P06": (1, 3, 2, "At risk"),
    "P07": (2, 3, 3, "At risk"),
    "P08": (2, 4, 4, "At risk"),
    "P09": (2, 4, 4, "At risk"),
    "P10": (2, 4, 4, "At risk"),
    "P11": (2, 5, 5, "Cannot lose them"),
    "P12": (2, 5, 5, "Cannot lose them"),
    "P13": (3, 2, 3, "About to sleep"),
    "P14": (3, 2, 2, "About to sleep"),
    "P15": (3, 2, 1, "About to sleep"),
    "P16": (3, 3, 1, "Need attention"),
    "P17": (3, 4, 2, "Loyal customers"),
    "P18": (3, 5, 3, "Loyal customers"),
    "P19": (4, 2, 2, "Potential loyalists"),
    "P20": (4, 3, 2, "Potential loyalists"),
    "P21": (4, 3, 3, "Potential loyalists"),
    "P22": (4, 5, 5, "Loyal customers"),
    "P23": (4, 5, 5, "Loyal customers"),
    "P24": (4, 5, 5, "Loyal customers"),
    "P25": (5, 1, 3, "New customers"),
    "P26": (5, 1, 1, "New customers"),
    "P27": (5, 1, 3, "New customers"),
    "P28": (5, 1, 1, "New customers"),
    "P29": (5, 4, 5, "Champions"),
    "P30": (5, 4, 4, "Champions"),
}

# Window edges for reference 2026-04-01 and 90-day windows: the last 90 days start 2026-01-01 00:00,
# the previous 90 start 2025-10-03 00:00; events at or after the reference date are ignored.
EDGE_EVENTS = [
    # W1: an order exactly 90 days before the reference date is in the last 90 days
    ("ORDER_CREATED", "2026-01-01 00:00:00", "W1", "W1-a", 100.0),
    # W2: one second earlier it is in the previous 90 days
    ("ORDER_CREATED", "2025-12-31 23:59:59", "W2", "W2-a", 100.0),
    # W3: exactly 180 days back is the previous window's first second; one second earlier is in neither
    ("ORDER_CREATED", "2025-10-03 00:00:00", "W3", "W3-a", 100.0),
    ("ORDER_CREATED", "2025-10-02 23:59:59", "W3", "W3-b", 50.0),
    # W4: the last second before the reference date counts; the reference date itself does not
    ("ORDER_CREATED", "2026-03-31 23:59:59", "W4", "W4-a", 10.0),
    ("ORDER_CREATED", "2026-04-01 00:00:00", "W4", "W4-b", 999.0),
    # C1: cancelled for more than the order's gross: the order contributes 0, not -50
    ("ORDER_CREATED", "2026-02-01 10:00:00", "C1", "C1-a", 60.0),
    ("ORDER_CREATED", "2026-02-01 10:00:00", "C1", "C1-a", 40.0),
    ("ORDER_CANCELLED", "2026-02-01 11:00:00", "C1", "C1-a", 150.0),
    ("ORDER_CREATED", "2026-02-15 10:00:00", "C1", "C1-b", 30.0),
    # C2: a partial cancellation marks the order cancelled (no frequency) and leaves its remainder in spend
    ("ORDER_CREATED", "2026-02-01 10:00:00", "C2", "C2-a", 100.0),
    ("ORDER_CANCELLED", "2026-02-02 10:00:00", "C2", "C2-a", 30.0),
    # C3: a cancellation dated at the reference date is not seen yet: the order is kept
    ("ORDER_CREATED", "2026-03-30 10:00:00", "C3", "C3-a", 80.0),
    ("ORDER_CANCELLED", "2026-04-01 00:00:00", "C3", "C3-a", 80.0),
    # R1: a return refunds its amount; the order still counts
    ("ORDER_CREATED", "2026-02-01 10:00:00", "R1", "R1-a", 200.0),
    ("ORDER_RETURNED", "2026-02-10 10:00:00", "R1", "R1-a", 50.0),
    # R2: a return is booked to its order's window (previous 90 days), not to the return date's
    ("ORDER_CREATED", "2025-12-01 10:00:00", "R2", "R2-a", 100.0),
    ("ORDER_RETURNED", "2026-01-15 10:00:00", "R2", "R2-a", 40.0),
]


def _insert(session: Any, rows: list[tuple[str, str, str, str, float]]) -> Any:
    session.sql(
        "CREATE OR REPLACE TABLE EVENTS (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS TIMESTAMP_NTZ, "
        "CUSTOMER_ID VARCHAR, ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY NUMBER(10,0), "
        "AMOUNT NUMBER(12,2), CHANNEL VARCHAR)"
    ).collect()
    values = ", ".join(
        f"('e{n}', '{typ}', '{ts}', '{cid}', '{oid}', 'p', 'X', 1, {amount:.2f}, 'web')"
        for n, (typ, ts, cid, oid, amount) in enumerate(rows)
    )
    session.sql(f"INSERT INTO EVENTS VALUES {values}").collect()
    return session.table("EVENTS")


def _features(session: Any, rows: list[tuple[str, str, str, str, float]]) -> pd.DataFrame:
    return compute_customer_features(_insert(session, rows), PARAMS).to_pandas().set_index("CUSTOMER_ID")


def population_events() -> list[tuple[str, str, str, str, float]]:
    reference = datetime.fromisoformat(REFERENCE)
    rows = []
    for cid, (last, orders, amount) in POPULATION.items():
        for n in range(orders):
            ts = reference - timedelta(days=last + n) + timedelta(hours=12)
            rows.append(("ORDER_CREATED", ts.strftime("%Y-%m-%d %H:%M:%S"), cid, f"{cid}-{n}", float(amount)))
    return rows


def test_population_has_the_recency_frequency_monetary_it_was_built_with(warehouse_session: Any) -> None:
    features = _features(warehouse_session, population_events())
    assert sorted(features.index) == sorted(POPULATION)
    for cid, (last, orders, amount) in POPULATION.items():
        row = features.loc[cid]
        assert (row["RECENCY_DAYS"], row["FREQUENCY"], float(row["MONETARY"])) == (
            last,
            orders,
            orders * amount,
        ), cid


def test_rfm_scores_and_segments_are_pinned(warehouse_session: Any) -> None:
    features = _features(warehouse_session, population_events())
    got = {
        cid: (int(r["R_SCORE"]), int(r["F_SCORE"]), int(r["M_SCORE"]), r["RFM_SEGMENT"])
        for cid, r in features.iterrows()
    }
    assert got == EXPECTED
    assert all(features.loc[c, "RFM_SCORE"] == "".join(str(s) for s in EXPECTED[c][:3]) for c in EXPECTED)
    # five equal tiles of six customers each
    for column in ("R_SCORE", "F_SCORE", "M_SCORE"):
        assert features[column].astype(int).value_counts().sort_index().tolist() == [6, 6, 6, 6, 6]


@pytest.fixture
def edges(warehouse_session: Any) -> pd.DataFrame:
    return _features(warehouse_session, EDGE_EVENTS)


def test_an_order_exactly_90_days_back_is_in_the_last_90_days(edges: pd.DataFrame) -> None:
    w1, w2 = edges.loc["W1"], edges.loc["W2"]
    assert (w1["RECENCY_DAYS"], w1["SPEND_LAST_90D"], w1["SPEND_PREV_90D"], w1["SPEND_TREND"]) == (
        90,
        100,
        0,
        1,
    )
    assert (w2["RECENCY_DAYS"], w2["SPEND_LAST_90D"], w2["SPEND_PREV_90D"], w2["SPEND_TREND"]) == (
        91,
        0,
        100,
        -1,
    )


def test_previous_window_starts_exactly_180_days_back(edges: pd.DataFrame) -> None:
    w3 = edges.loc["W3"]
    assert (w3["SPEND_LAST_90D"], w3["SPEND_PREV_90D"], w3["MONETARY"], w3["FREQUENCY"]) == (0, 100, 150, 2)
    assert w3["SPEND_TREND"] == -1


def test_events_at_the_reference_date_are_not_seen(edges: pd.DataFrame) -> None:
    w4 = edges.loc["W4"]
    assert (w4["RECENCY_DAYS"], w4["FREQUENCY"], w4["MONETARY"], w4["SPEND_LAST_90D"]) == (1, 1, 10, 10)
    c3 = edges.loc["C3"]  # its cancellation is dated at the reference date: not cancelled yet
    assert (c3["FREQUENCY"], c3["MONETARY"], c3["CANCELLATION_RATE"]) == (1, 80, 0)


def test_a_cancellation_larger_than_the_order_is_capped_at_its_gross(edges: pd.DataFrame) -> None:
    c1 = edges.loc["C1"]
    assert c1["FREQUENCY"] == 1  # C1-a is cancelled
    assert c1["MONETARY"] == pytest.approx(30.0)  # 100 - min(150, 100) + 30, not -20
    assert c1["SPEND_LAST_90D"] == pytest.approx(30.0)
    assert c1["CANCELLATION_RATE"] == pytest.approx(0.5)
    assert c1["AVG_ORDER_VALUE"] == pytest.approx(30.0)


def test_a_partial_cancellation_cancels_the_order_and_keeps_the_remainder(edges: pd.DataFrame) -> None:
    c2 = edges.loc["C2"]
    assert (c2["FREQUENCY"], c2["MONETARY"], c2["CANCELLATION_RATE"], c2["AVG_ORDER_VALUE"]) == (0, 70, 1, 0)


def test_returns_refund_their_amount_in_their_orders_window(edges: pd.DataFrame) -> None:
    r1, r2 = edges.loc["R1"], edges.loc["R2"]
    assert (r1["FREQUENCY"], r1["MONETARY"], r1["SPEND_LAST_90D"]) == (1, 150, 150)
    assert r1["RETURN_RATE"] == pytest.approx(0.25)
    assert (r2["MONETARY"], r2["SPEND_LAST_90D"], r2["SPEND_PREV_90D"], r2["SPEND_TREND"]) == (60, 0, 60, -1)
    assert r2["RETURN_RATE"] == pytest.approx(0.4)
