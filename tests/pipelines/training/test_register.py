"""register_model_version: the model and its training evidence as one record, pruning rules from parameters."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from customer_segmentation.datasets import ModelVersionWrite
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.model import SegmentationModel
from customer_segmentation.pipelines.prediction.params import PredictionParams
from customer_segmentation.pipelines.training.nodes import (
    evaluate_k_range,
    fit_segmentation_model,
    measure_stability,
    register_model_version,
)
from customer_segmentation.pipelines.training.params import TrainingParams
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


@pytest.fixture(scope="module")
def inputs() -> tuple:
    sample = planted_customers()
    choice = {"k": 3, "source": "test", "elbow_k": 3}
    model = fit_segmentation_model(sample, choice, PARAMS, {"run_id": "run-1"})
    return model, evaluate_k_range(sample, PARAMS), choice, measure_stability(sample, model, PARAMS), sample


def test_record_holds_model_and_training_metrics(inputs: tuple) -> None:
    model, selection, choice, stability, sample = inputs
    write = register_model_version(
        model,
        selection,
        choice,
        stability,
        sample,
        TrainingParams.of(PARAMS, keep_model_versions=7),
        PredictionParams(),
        {"run_id": "run-1"},
    )
    assert isinstance(write, ModelVersionWrite)
    assert (write.run_id, write.keep_versions, write.protect) == ("run-1", 7, ())
    record = json.loads(json.dumps(write.record, allow_nan=False))  # strict JSON all the way
    assert record["version"] == "run-1" and record["k"] == 3
    assert record["metrics"]["stability"]["ari_mean"] == stability["ari_mean"]
    assert [row["k"] for row in record["metrics"]["k_selection"]] == selection["k"].tolist()
    assert record["metrics"]["k_choice"]["elbow_k"] == 3
    assert SegmentationModel.from_record(record).predict(sample).tolist() == model.predict(sample).tolist()


def test_pinned_version_is_protected_and_keep_is_checked(inputs: tuple) -> None:
    model, selection, choice, stability, sample = inputs
    write = register_model_version(
        model,
        selection,
        choice,
        stability,
        sample,
        PARAMS,
        PredictionParams(model_version="old-run"),
        {"run_id": "run-1"},
    )
    assert write.protect == ("old-run",) and write.keep_versions == 20  # the default
    for bad in (0, -1, "5", 2.5, True):
        with pytest.raises(InvalidParametersError, match="training.keep_model_versions"):
            TrainingParams.of(PARAMS, keep_model_versions=bad)


def test_nan_metrics_become_null(inputs: tuple) -> None:
    model, selection, choice, stability, sample = inputs
    selection = selection.assign(silhouette=float("nan"))
    write = register_model_version(
        model, selection, choice, stability, sample, PARAMS, PredictionParams(), {"run_id": "r"}
    )
    assert {row["silhouette"] for row in write.record["metrics"]["k_selection"]} == {None}
    assert pd.isna(selection["silhouette"]).all()  # the input frame is not modified
