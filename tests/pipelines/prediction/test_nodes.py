"""In-warehouse scoring agrees with scikit-learn, and new customers are flagged."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.pipelines.prediction.nodes import assign_segments, score_customers, summarise_segments
from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
from customer_segmentation.warehouse.errors import MissingColumnsError
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


def random_customers(n: int, seed: int = 3) -> pd.DataFrame:
    """Customers spread everywhere (not only near the planted clusters), incl. zeros and negatives."""
    rng = np.random.default_rng(seed)
    frequency = rng.integers(0, 40, n).astype(float)
    monetary = rng.lognormal(5, 1.5, n) * np.where(rng.random(n) < 0.02, -1, 1)
    return pd.DataFrame(
        {
            "CUSTOMER_ID": [f"R{i:06d}" for i in range(n)],
            "RECENCY_DAYS": rng.integers(0, 730, n).astype(float),
            "FREQUENCY": frequency,
            "MONETARY": monetary,
            "AVG_ORDER_VALUE": np.where(frequency > 0, monetary / np.maximum(frequency, 1), 0.0),
            "RETURN_RATE": rng.uniform(0, 0.5, n),
        }
    )


@pytest.fixture(scope="module")
def model() -> Any:
    return fit_segmentation_model(planted_customers(), {"k": 4, "source": "test"}, PARAMS, {"run_id": "test-model"})


def upload(session: Any, frame: pd.DataFrame, table: str) -> Any:
    columns = ", ".join(f"{c} {'VARCHAR' if c == 'CUSTOMER_ID' else 'DOUBLE'}" for c in frame.columns)
    session.sql(f"CREATE OR REPLACE TABLE {table} ({columns})").collect()
    session.write_pandas(frame, table, auto_create_table=False)
    return session.table(table)


def test_warehouse_assignment_equals_sklearn_predict(warehouse_session: Any, model: Any) -> None:
    customers = random_customers(3000)
    scored = assign_segments(upload(warehouse_session, customers, "CUSTOMERS"), model).to_pandas()
    scored = scored.set_index("CUSTOMER_ID").loc[customers["CUSTOMER_ID"]]
    expected = model.estimator.predict(model.transform(customers))
    # ties aside: customers almost equidistant from two centroids may legitimately differ
    scaled = model.transform(customers)
    d = np.sort(((scaled[:, None, :] - model.centroids[None, :, :]) ** 2).sum(axis=2), axis=1)
    clear = (d[:, 1] - d[:, 0]) > 1e-9
    assert clear.sum() > 2900
    np.testing.assert_array_equal(scored["SEGMENT_ID"].to_numpy()[clear], expected[clear])
    assert list(scored["SEGMENT_LABEL"].to_numpy()[clear]) == [model.labels[i] for i in expected[clear]]
    np.testing.assert_allclose(scored["DISTANCE_TO_CENTROID"].to_numpy(), np.sqrt(d[:, 0]), rtol=1e-6, atol=1e-9)


def test_new_customers_are_flagged_and_summary_adds_up(warehouse_session: Any, model: Any) -> None:
    customers = random_customers(200)
    table = upload(warehouse_session, customers, "CUSTOMERS")
    warehouse_session.sql(
        "CREATE TABLE PREVIOUS AS SELECT CUSTOMER_ID, 'Old label' AS SEGMENT_LABEL FROM CUSTOMERS WHERE CUSTOMER_ID < 'R000050'"
    ).collect()
    scored = score_customers(table, model, warehouse_session.table("PREVIOUS"))
    frame = scored.to_pandas()
    assert len(frame) == 200
    assert frame["IS_NEW_CUSTOMER"].sum() == 150
    assert (frame.loc[~frame["IS_NEW_CUSTOMER"], "PREVIOUS_SEGMENT_LABEL"] == "Old label").all()
    assert (frame["MODEL_VERSION"] == "test-model").all()
    summary = summarise_segments(scored, model)
    assert summary["CUSTOMERS"].sum() == 200 and summary["NEW_CUSTOMERS"].sum() == 150
    assert summary["CUSTOMER_SHARE"].sum() == pytest.approx(1.0)


def test_missing_feature_column_is_named(warehouse_session: Any, model: Any) -> None:
    table = upload(warehouse_session, random_customers(10).drop(columns=["RETURN_RATE"]), "PARTIAL")
    with pytest.raises(MissingColumnsError, match="RETURN_RATE"):
        assign_segments(table, model)
