"""In-warehouse scoring agrees with scikit-learn, and new customers are flagged."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pandas as pd
import pytest
from snowflake.snowpark import functions as F

from customer_segmentation.errors import MissingColumnsError
from customer_segmentation.model import SegmentationModel
from customer_segmentation.pipelines.prediction.nodes import (
    assign_segments,
    score_customers,
    summarise_segments,
)
from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
from tests.pipelines.training.histories import classic_rfm
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


def random_customers(n: int, seed: int = 3) -> pd.DataFrame:
    """Customers spread everywhere (not only near the planted clusters), incl. zeros and negatives."""
    rng = np.random.default_rng(seed)
    frequency = rng.integers(0, 40, n).astype(float)
    monetary = rng.lognormal(5, 1.5, n) * np.where(rng.random(n) < 0.02, -1, 1)
    frame = pd.DataFrame(
        {
            "CUSTOMER_ID": [f"R{i:06d}" for i in range(n)],
            "RECENCY_DAYS": rng.integers(0, 730, n).astype(float),
            "FREQUENCY": frequency,
            "MONETARY": monetary,
            "AVG_ORDER_VALUE": np.where(frequency > 0, monetary / np.maximum(frequency, 1), 0.0),
            "RETURN_RATE": rng.uniform(0, 0.5, n),
        }
    )
    return classic_rfm(frame).drop(columns=["R_SCORE", "F_SCORE", "M_SCORE"])


@pytest.fixture(scope="module")
def model() -> Any:
    return fit_segmentation_model(
        planted_customers(), {"k": 4, "source": "test"}, PARAMS, {"run_id": "test-model"}
    )


def upload(session: Any, frame: pd.DataFrame, table: str) -> Any:
    columns = ", ".join(
        f"{c} {'VARCHAR' if c in ('CUSTOMER_ID', 'RFM_SEGMENT') else 'DOUBLE'}" for c in frame.columns
    )
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
    np.testing.assert_allclose(
        scored["DISTANCE_TO_CENTROID"].to_numpy(), np.sqrt(d[:, 0]), rtol=1e-6, atol=1e-9
    )


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
    # faithfulness: share of a segment's scored customers whose classic RFM segment is the label's base name
    for row in summary.itertuples():
        members = frame[frame["SEGMENT_ID"] == row.SEGMENT_ID]
        assert row.BASE_LABEL == model.base_labels[model.labels.index(row.SEGMENT_LABEL)]
        assert row.SEGMENT_LABEL.startswith(row.BASE_LABEL)
        assert row.FAITHFUL_CUSTOMERS == (members["RFM_SEGMENT"] == row.BASE_LABEL).sum()
        assert row.FAITHFUL_SHARE == pytest.approx(row.FAITHFUL_CUSTOMERS / len(members))


def test_summary_of_a_model_saved_before_base_labels_strips_the_qualifier(
    warehouse_session: Any, model: Any
) -> None:
    old = copy.copy(model)
    old.__dict__.pop("base_labels", None)  # as unpickled from a model saved before the field existed
    old.labels = [f"{b} (old qualifier)" for b in model.base_labels]
    assert old.base_labels == ()
    customers = random_customers(300)
    table = upload(warehouse_session, customers, "CUSTOMERS")
    summary = summarise_segments(
        score_customers(table, old, table.select("CUSTOMER_ID", F.lit("x").alias("SEGMENT_LABEL"))), old
    )
    assert summary["BASE_LABEL"].tolist() == [
        model.base_labels[old.labels.index(label)] for label in summary["SEGMENT_LABEL"]
    ]
    # faithful = classic segment equals the base name (never the qualified label)
    bases = pd.Series(model.base_labels)[old.predict(customers)].to_numpy()
    faithful = pd.Series(customers["RFM_SEGMENT"].to_numpy() == bases).groupby(old.predict(customers)).sum()
    assert summary["FAITHFUL_CUSTOMERS"].tolist() == [faithful.get(i, 0) for i in summary["SEGMENT_ID"]]
    assert summary["FAITHFUL_CUSTOMERS"].sum() > 0


def test_summary_without_rfm_segment_says_what_to_rerun(warehouse_session: Any, model: Any) -> None:
    table = upload(warehouse_session, random_customers(20).drop(columns=["RFM_SEGMENT"]), "NO_RFM")
    scored = score_customers(table, model, table.select("CUSTOMER_ID", F.lit("x").alias("SEGMENT_LABEL")))
    with pytest.raises(MissingColumnsError, match="RFM_SEGMENT"):
        summarise_segments(scored, model)


def tie_model(centroids: list[list[float]]) -> SegmentationModel:
    """A hand-made model on two features (means 10 and 100, scales 2 and 5) with the given centroids."""
    k = len(centroids)
    return SegmentationModel(
        features=["FREQUENCY", "MONETARY"],
        log_features=[],
        means=np.array([10.0, 100.0]),
        scales=np.array([2.0, 5.0]),
        centroids=np.array(centroids),
        labels=[f"S{i}" for i in range(k)],
        descriptions=[""] * k,
        version="tie",
        trained_at="",
        base_labels=[f"S{i}" for i in range(k)],
    )


def test_exact_tie_between_centroids_goes_to_the_lowest_segment_id(warehouse_session: Any) -> None:
    # z = ((F - 10) / 2, (M - 100) / 5); every distance below is an exact binary fraction
    model = tie_model([[1.0, 2.0], [-1.0, -2.0], [3.0, 2.0], [1.0, 2.0]])
    customers = pd.DataFrame(
        {
            "CUSTOMER_ID": ["T0", "T1", "T2", "T3"],
            "FREQUENCY": [10.0, 14.0, 12.0, 8.0],  # z_F = 0, 2, 1, -1
            "MONETARY": [100.0, 110.0, 110.0, 90.0],  # z_M = 0, 2, 2, -2
        }
    )
    # T0: ids 0, 1 and 3 at distance 5 (2 at 13) -> 0; T1: ids 0, 2 and 3 at 1 -> 0 ...
    # T2: id 0 and 3 at 0 (duplicate centroid) -> 0; T3: id 1 at 0 -> 1
    scaled = model.transform(customers)
    distances = ((scaled[:, None, :] - model.centroids[None, :, :]) ** 2).sum(axis=2)
    np.testing.assert_array_equal(distances[:, [0, 1, 3]][0], [5.0, 5.0, 5.0])
    scored = (
        assign_segments(upload(warehouse_session, customers, "TIES"), model)
        .to_pandas()
        .set_index("CUSTOMER_ID")
    )
    assert scored.loc[["T0", "T1", "T2", "T3"], "SEGMENT_ID"].tolist() == [0, 0, 0, 1]
    # the same as numpy's argmin and the model's own predict (first minimum, as scikit-learn's KMeans.predict)
    assert model.predict(customers).tolist() == [0, 0, 0, 1] == distances.argmin(axis=1).tolist()


def test_tie_between_higher_ids_goes_to_the_lower_of_them(warehouse_session: Any) -> None:
    model = tie_model([[-5.0, -5.0], [1.0, 0.0], [-1.0, 0.0]])
    customers = pd.DataFrame({"CUSTOMER_ID": ["U0"], "FREQUENCY": [10.0], "MONETARY": [100.0]})  # z = (0, 0)
    scored = assign_segments(upload(warehouse_session, customers, "TIES2"), model).to_pandas()
    assert scored["SEGMENT_ID"].tolist() == [1] and scored["SEGMENT_LABEL"].tolist() == ["S1"]
    assert scored["DISTANCE_TO_CENTROID"].tolist() == [1.0]


def test_missing_feature_column_is_named(warehouse_session: Any, model: Any) -> None:
    table = upload(warehouse_session, random_customers(10).drop(columns=["RETURN_RATE"]), "PARTIAL")
    with pytest.raises(MissingColumnsError, match="RETURN_RATE"):
        assign_segments(table, model)


def test_scoring_carries_the_value_of_the_same_date_in_order_with_few_describes(
    warehouse_session: Any, model: Any
) -> None:
    """Value columns of the same reference date only, columns in the published order, and the
    segment distances (~10 KB of SQL) not DESCRIBEd on each side of each join."""
    customers = random_customers(120).assign(REFERENCE_DATE=None)
    table = upload(warehouse_session, customers.drop(columns=["REFERENCE_DATE"]), "VALUED")
    features = table.select("*", F.lit("2026-11-03").cast("date").alias("REFERENCE_DATE"))
    warehouse_session.sql(
        "CREATE OR REPLACE TABLE VALUES_BY_DAY AS "
        "SELECT CUSTOMER_ID, CAST('2026-11-03' AS DATE) AS REFERENCE_DATE, 0.5 AS P_ALIVE, 2.0 AS EXPECTED_PURCHASES, "
        "10.0 AS EXPECTED_ORDER_VALUE, 20.0 AS CLV FROM VALUED WHERE CUSTOMER_ID < 'R000060' "
        "UNION ALL SELECT CUSTOMER_ID, CAST('2026-11-02' AS DATE), 0.9, 9.0, 9.0, 99.0 FROM VALUED"
    ).collect()
    warehouse_session.sql(
        "CREATE OR REPLACE TABLE PREVIOUS_VALUED AS SELECT CUSTOMER_ID, 'Old' AS SEGMENT_LABEL FROM VALUED "
        "WHERE CUSTOMER_ID >= 'R000100'"
    ).collect()
    with warehouse_session.query_history(include_describe=True) as history:
        scored = score_customers(
            features,
            model,
            warehouse_session.table("PREVIOUS_VALUED"),
            warehouse_session.table("VALUES_BY_DAY"),
        )
        columns = scored.columns  # what saving it asks (CREATE TABLE ... AS needs the types)
    describes = [q.sql_text for q in history.queries if q.is_describe]
    # the distance query (~10 KB of SQL at 1M customers' scale of features) described once, for the
    # save; it was described 5 times when the joins and with_columns came after it (16 DESCRIBEs)
    assert sum("_D0" in sql for sql in describes) == 1, describes
    assert len(describes) <= 10, describes
    assert columns == [
        *features.columns,
        "SEGMENT_ID",
        "SEGMENT_LABEL",
        "DISTANCE_TO_CENTROID",
        "P_ALIVE",
        "EXPECTED_PURCHASES",
        "EXPECTED_ORDER_VALUE",
        "CLV",
        "PREVIOUS_SEGMENT_LABEL",
        "IS_NEW_CUSTOMER",
        "MODEL_VERSION",
    ]
    frame = scored.to_pandas().set_index("CUSTOMER_ID").sort_index()
    assert len(frame) == 120
    valued = frame.index < "R000060"
    assert (frame.loc[valued, "CLV"] == 20.0).all() and frame.loc[~valued, "CLV"].isna().all()
    assert frame.loc[~valued, "P_ALIVE"].isna().all()  # the other day's values never mix in
    assert (frame["IS_NEW_CUSTOMER"] == (frame.index < "R000100")).all()
    assert (frame.loc[~frame["IS_NEW_CUSTOMER"], "PREVIOUS_SEGMENT_LABEL"] == "Old").all()
    expected = model.predict(
        customers.drop(columns=["REFERENCE_DATE"]).set_index("CUSTOMER_ID").sort_index().reset_index()
    )
    assert frame["SEGMENT_ID"].tolist() == [model.ids()[k] for k in expected]
    assert frame["SEGMENT_LABEL"].tolist() == [model.labels[k] for k in expected]
