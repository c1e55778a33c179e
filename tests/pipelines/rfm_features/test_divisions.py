"""Ratios in the customer features: full DOUBLE precision and no division by zero, on any engine.

Snowflake gives NUMBER / NUMBER a 6-decimal scale (1/3 = 0.333333) and raises on x / 0; the
embedded warehouse gives full precision and inf. The values below are what the code promises on
both: the test only uses SQL that Snowflake runs too (see tests/snowflake/ for the live run).
"""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from customer_segmentation.pipelines.rfm_features.nodes import compute_customer_features

PARAMS = {"reference_date": "2026-04-01", "trend_window_days": 90, "channels": ["web", "app"]}
EVENTS = [
    # T: four kept orders over 10 days (10/3 days between orders), 1 of 5 placed cancelled (1/5), web 1/3 of gross
    ("t1", "ORDER_CREATED", "2026-03-01 10:00:00", "T", "T1", 10.0, "web"),
    ("t2", "ORDER_CREATED", "2026-03-04 10:00:00", "T", "T2", 10.0, "app"),
    ("t3", "ORDER_CREATED", "2026-03-08 10:00:00", "T", "T3", 5.0, "app"),
    ("t4", "ORDER_CREATED", "2026-03-11 10:00:00", "T", "T4", 5.0, "app"),
    ("t5", "ORDER_CREATED", "2026-03-12 10:00:00", "T", "T5", 0.0, "store"),
    ("t6", "ORDER_CANCELLED", "2026-03-12 11:00:00", "T", "T5", 0.0, "store"),
    # Z: one order of amount zero, cancelled: zero kept orders, zero gross, zero spend
    ("z1", "ORDER_CREATED", "2026-03-02 10:00:00", "Z", "Z1", 0.0, "web"),
    ("z2", "ORDER_CANCELLED", "2026-03-02 11:00:00", "Z", "Z1", 0.0, "web"),
    # S: a single order (no gap between orders)
    ("s1", "ORDER_CREATED", "2026-02-01 10:00:00", "S", "S1", 7.0, "web"),
]


def build_features(session: Any) -> pd.DataFrame:
    """The features of EVENTS on any session (also used by the live suite, tests/snowflake/)."""
    session.sql(
        "CREATE OR REPLACE TABLE EVENTS_DIV (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS TIMESTAMP_NTZ, CUSTOMER_ID VARCHAR, "
        "ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY NUMBER(10,0), AMOUNT NUMBER(12,2), CHANNEL VARCHAR)"
    ).collect()
    for e in EVENTS:
        session.sql(
            "INSERT INTO EVENTS_DIV SELECT ?, ?, CAST(? AS TIMESTAMP_NTZ), ?, ?, 'p', 'c', 1, ?, ?",
            params=list(e),
        ).collect()
    return compute_customer_features(session.table("EVENTS_DIV"), PARAMS).to_pandas().set_index("CUSTOMER_ID")


@pytest.fixture
def features(warehouse_session: Any) -> pd.DataFrame:
    return build_features(warehouse_session)


def test_ratios_keep_full_precision(features: pd.DataFrame) -> None:
    check_full_precision(features)


def test_zero_denominators_give_defined_values(features: pd.DataFrame) -> None:
    check_zero_denominators(features)


def check_full_precision(features: pd.DataFrame) -> None:
    t = features.loc["T"]
    assert t["MEAN_DAYS_BETWEEN_ORDERS"] == pytest.approx(
        10 / 3, rel=1e-12
    )  # 3.333333 on Snowflake without the cast
    assert t["CANCELLATION_RATE"] == pytest.approx(1 / 5, rel=1e-12)
    assert t["SHARE_WEB"] == pytest.approx(10 / 30, rel=1e-12)
    assert t["SHARE_APP"] == pytest.approx(20 / 30, rel=1e-12)
    assert t["AVG_ORDER_VALUE"] == pytest.approx(7.5)


def check_zero_denominators(features: pd.DataFrame) -> None:
    z = features.loc["Z"]
    assert z["FREQUENCY"] == 0
    assert z["AVG_ORDER_VALUE"] == 0.0  # 0 spend over 0 kept orders
    assert z["RETURN_RATE"] == 0.0 and z["SHARE_WEB"] == 0.0  # zero gross
    assert z["SPEND_TREND"] == 0.0  # no spend in either window
    assert z["CANCELLATION_RATE"] == 1.0
    assert pd.isna(z["MEAN_DAYS_BETWEEN_ORDERS"])
    assert pd.isna(features.loc["S", "MEAN_DAYS_BETWEEN_ORDERS"])
    numeric = features.select_dtypes("number")
    assert not numeric.isin([float("inf"), float("-inf")]).any().any()


def test_every_division_is_in_double_and_guarded(warehouse_session: Any) -> None:
    """The emulator cannot show Snowflake's NUMBER scale or its division error: the SQL must avoid both."""
    import re

    warehouse_session.sql(
        "CREATE TABLE EV2 (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS TIMESTAMP_NTZ, CUSTOMER_ID VARCHAR, "
        "ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY NUMBER(10,0), AMOUNT NUMBER(12,2), CHANNEL VARCHAR)"
    ).collect()
    sql = compute_customer_features(warehouse_session.table("EV2"), PARAMS).queries["queries"][-1]
    divisions = re.findall(r"(\w+\)?)\s*/\s*(\w+)\(\s*(\w+)", sql)
    assert len(divisions) >= 6, "too few divisions found: the check below would prove nothing"
    # every one is CAST(... AS DOUBLE) / nullif( CAST(... AS DOUBLE), 0.0)
    assert all(
        d[0].upper() == "DOUBLE)" and d[1].lower() == "nullif" and d[2].upper() == "CAST" for d in divisions
    ), divisions
