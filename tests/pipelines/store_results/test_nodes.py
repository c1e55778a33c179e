"""build_processed_data on a throw-away warehouse: key columns first, one row per customer, run stamps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.pipelines.store_results.nodes import LEADING_COLUMNS, build_processed_data

TYPES = {
    "CUSTOMER_ID": "VARCHAR",
    "SEGMENT_LABEL": "VARCHAR",
    "PREVIOUS_SEGMENT_LABEL": "VARCHAR",
    "RFM_SEGMENT": "VARCHAR",
    "MODEL_VERSION": "VARCHAR",
    "IS_NEW_CUSTOMER": "BOOLEAN",
    "SEGMENT_ID": "NUMBER(38,0)",
}


def scored(n: int, seed: int) -> pd.DataFrame:
    """Scored customers in a shuffled column order, with extra feature columns (not the prediction's shape)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "MONETARY": rng.gamma(2.0, 50.0, n).round(2),
            "MODEL_VERSION": ["20261101T000000Z-k3"] * n,
            "DISTANCE_TO_CENTROID": rng.random(n),
            "CUSTOMER_ID": [f"Z{i:04d}" for i in rng.permutation(n)],
            "RFM_SCORE": rng.integers(3, 16, n).astype(float),
            "SEGMENT_LABEL": rng.choice(["Champions", "At risk", "New"], n),
            "FREQUENCY": rng.integers(1, 30, n).astype(float),
            "R_SCORE": rng.integers(1, 6, n).astype(float),
            "IS_NEW_CUSTOMER": rng.random(n) < 0.2,
            "F_SCORE": rng.integers(1, 6, n).astype(float),
            "PREVIOUS_SEGMENT_LABEL": rng.choice(["Champions", None], n),
            "M_SCORE": rng.integers(1, 6, n).astype(float),
            "SEGMENT_ID": rng.integers(0, 3, n),
            "RFM_SEGMENT": rng.choice(["Loyal", "Hibernating"], n),
            "RECENCY_DAYS": rng.integers(1, 700, n).astype(float),
        }
    )
    return frame


def upload(session: Any, frame: pd.DataFrame, table: str = "SCORED_CUSTOMERS") -> Any:
    columns = ", ".join(f"{c} {TYPES.get(c, 'DOUBLE')}" for c in frame.columns)
    session.sql(f"CREATE OR REPLACE TABLE {table} ({columns})").collect()
    session.write_pandas(frame, table, auto_create_table=False)
    return session.table(table)


@pytest.mark.parametrize(("n", "seed"), [(1, 1), (57, 2)])
def test_key_columns_first_one_row_per_customer_and_run_stamps(
    warehouse_session: Any, n: int, seed: int
) -> None:
    source = scored(n, seed)
    out = build_processed_data(
        upload(warehouse_session, source), {"run_id": "run-42", "started_at": "2026-11-25T10:30:00"}
    )
    extra = [c for c in source.columns if c not in LEADING_COLUMNS and c != "MODEL_VERSION"]
    assert out.columns == [*LEADING_COLUMNS, *extra, "MODEL_VERSION", "RUN_ID", "SCORED_AT"]
    got = out.to_pandas()
    assert len(got) == n and got["CUSTOMER_ID"].is_unique
    assert set(got["RUN_ID"]) == {"run-42"}
    assert {pd.Timestamp(v).to_pydatetime() for v in got["SCORED_AT"]} == {datetime(2026, 11, 25, 10, 30)}
    # every customer's values are carried unchanged (compared per customer, independent of order)
    expected = source.set_index("CUSTOMER_ID").sort_index()
    actual = got.set_index("CUSTOMER_ID").sort_index()
    for column in ("MONETARY", "DISTANCE_TO_CENTROID", "R_SCORE", "RECENCY_DAYS"):
        assert np.allclose(actual[column].astype(float), expected[column].astype(float)), column
    assert list(actual["SEGMENT_LABEL"]) == list(expected["SEGMENT_LABEL"])
    assert list(actual["IS_NEW_CUSTOMER"].astype(bool)) == list(expected["IS_NEW_CUSTOMER"])
    assert list(actual["MODEL_VERSION"]) == list(expected["MODEL_VERSION"])


def test_missing_run_id_is_empty_text_not_none(warehouse_session: Any) -> None:
    out = build_processed_data(upload(warehouse_session, scored(3, 5)), {"started_at": "2026-11-25 10:30:00"})
    assert {r[0] for r in out.select("RUN_ID").collect()} == {""}


def test_a_missing_key_column_fails_naming_it(warehouse_session: Any) -> None:
    frame = scored(4, 6).drop(columns=["DISTANCE_TO_CENTROID"])
    with pytest.raises(Exception, match="DISTANCE_TO_CENTROID"):
        build_processed_data(
            upload(warehouse_session, frame), {"run_id": "r", "started_at": "2026-11-25"}
        ).collect()
