"""The training sample: bounded, deterministic (MD5 order of seed + id), the columns naming needs, as floats."""

from __future__ import annotations

import hashlib
from typing import Any

import pandas as pd
import pytest

from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.pipelines.training.params import TrainingParams
from customer_segmentation.segmentation_sample import (
    RFM_CLASSIC,
    sample_columns,
    sample_customer_features,
)
from tests.pipelines.prediction.test_nodes import upload
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


@pytest.fixture
def customers(warehouse_session: Any) -> tuple[pd.DataFrame, Any]:
    frame = planted_customers(150).drop(columns=["GROUP"])  # 450 customers
    return frame, upload(warehouse_session, frame, "CUSTOMER_FEATURES")


def test_a_bounded_sample_is_the_first_customers_in_md5_order(customers: tuple) -> None:
    frame, table = customers
    params = TrainingParams.of(PARAMS, sample_size=100, random_state=7)
    sample = sample_customer_features(table, params)
    # independent of the warehouse: hashlib's MD5 of seed + id, lowest 100
    digest = frame["CUSTOMER_ID"].map(lambda c: hashlib.md5(f"7{c}".encode()).hexdigest())
    expected = sorted(frame.loc[digest.sort_values().index[:100], "CUSTOMER_ID"])
    assert sample["CUSTOMER_ID"].tolist() == expected
    assert list(sample.columns) == sample_columns(params)
    assert set(RFM_CLASSIC) <= set(sample.columns)
    assert all(sample[c].dtype == float for c in params.features)
    by_id = frame.set_index("CUSTOMER_ID").loc[expected]
    pd.testing.assert_series_equal(
        sample.set_index("CUSTOMER_ID")["MONETARY"], by_id["MONETARY"], check_names=False
    )
    assert sample.equals(sample_customer_features(table, params))  # the same on every run
    other = sample_customer_features(table, TrainingParams.of(params, random_state=8))
    assert set(other["CUSTOMER_ID"]) != set(expected)


def test_a_small_table_comes_out_whole_in_id_order(customers: tuple) -> None:
    frame, table = customers
    sample = sample_customer_features(table, PARAMS)
    assert sample["CUSTOMER_ID"].tolist() == sorted(frame["CUSTOMER_ID"])


def test_unknown_feature_and_too_few_customers_are_explained(
    customers: tuple, warehouse_session: Any
) -> None:
    _, table = customers
    params = TrainingParams.of(PARAMS, features=[*PARAMS.features, "LOYALTY_POINTS"])
    with pytest.raises(
        InvalidParametersError, match="training.features names unknown column.*LOYALTY_POINTS"
    ):
        sample_customer_features(table, params)
    few = upload(warehouse_session, planted_customers(1).drop(columns=["GROUP"]), "FEW")  # 3 customers
    with pytest.raises(ValueError, match="Only 3 customers to train on"):
        sample_customer_features(few, TrainingParams.of(PARAMS, k_min=3, k_max=4))
