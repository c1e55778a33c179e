"""SegmentationModel records: exact JSON round trip, and which stored version is active."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.model import (
    MissingModelError,
    SegmentationModel,
    UnknownModelVersionError,
    active_version,
    json_safe,
    load_version,
    previous_version,
)
from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


@pytest.fixture(scope="module")
def model() -> SegmentationModel:
    return fit_segmentation_model(
        planted_customers(), {"k": 4, "source": "test"}, PARAMS, {"run_id": "v-test"}
    )


def test_record_round_trips_exactly_through_json_text(model: SegmentationModel) -> None:
    record = model.to_record()
    assert "estimator" not in record and "estimator" not in record["extra"]
    text = json.dumps(record, allow_nan=False)  # strict JSON: no NaN literal anywhere
    back = SegmentationModel.from_record(json.loads(text))
    # bit-for-bit equal floats (json writes the shortest text that reads back to the same double)
    for name in ("means", "scales", "centroids"):
        original, restored = getattr(model, name), getattr(back, name)
        assert restored.dtype == np.float64 and restored.shape == original.shape
        assert np.array_equal(original.view(np.int64), restored.view(np.int64)), name
    assert (back.features, back.log_features, back.labels, back.descriptions) == (
        model.features,
        model.log_features,
        model.labels,
        model.descriptions,
    )
    assert (back.version, back.trained_at, back.k, back.estimator) == (
        model.version,
        model.trained_at,
        4,
        None,
    )
    assert back.segment_stats == json_safe(model.segment_stats)
    customers = planted_customers(seed=7)
    np.testing.assert_array_equal(
        back.predict(customers), model.estimator.predict(model.transform(customers))
    )


def test_new_dataclass_fields_travel_in_extra() -> None:
    @dataclass
    class WithBaseLabels(SegmentationModel):
        base_labels: list[str] = field(default_factory=list)

    model = WithBaseLabels(
        features=["A"],
        log_features=[],
        means=np.array([1.0]),
        scales=np.array([2.0]),
        centroids=np.array([[0.5], [-0.5]]),
        labels=["x", "y"],
        descriptions=["dx", "dy"],
        version="v",
        trained_at="2026-01-01T00:00:00",
        base_labels=["X", "Y"],
        metrics={"silhouette": float("nan"), "n": np.int64(3)},
    )
    record = json.loads(json.dumps(model.to_record(), allow_nan=False))
    # every field outside the table's own columns: the monitoring ones and the subclass's
    assert record["extra"] == {"segment_ids": None, "drift_reference": {}, "base_labels": ["X", "Y"]}
    assert record["metrics"] == {"silhouette": None, "n": 3}  # NaN stored as null (PARSE_JSON-safe)
    assert WithBaseLabels.from_record(record).base_labels == ["X", "Y"]
    assert SegmentationModel.from_record(record).labels == ["x", "y"]  # unknown extras are ignored


def test_a_model_with_nan_centroids_is_refused(model: SegmentationModel) -> None:
    broken = SegmentationModel(**{**model.__dict__, "centroids": np.full_like(model.centroids, np.nan)})
    with pytest.raises(ValueError, match="NaN or infinite"):
        broken.to_record()


def test_inconsistent_record_is_refused(model: SegmentationModel) -> None:
    record = model.to_record()
    record["labels"] = record["labels"][:-1]
    with pytest.raises(ValueError, match="inconsistent"):
        SegmentationModel.from_record(record)


def _versions(*rows: tuple[str, str]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["version", "status"])


def test_active_is_newest_ready_unless_pinned() -> None:
    versions = _versions(("v3", "RETIRED"), ("v2", "READY"), ("v1", "READY"))  # newest first
    assert active_version(versions) == "v2"
    assert active_version(versions, "v1") == "v1"
    assert active_version(versions, "v3") == "v3"  # a pin wins over the status
    assert previous_version(versions, "v2") == "v1"
    assert previous_version(versions, "v1") is None
    assert previous_version(versions, "nope") is None


def test_pinning_an_unknown_version_lists_the_available_ones() -> None:
    with pytest.raises(UnknownModelVersionError) as excinfo:
        active_version(_versions(("v2", "READY"), ("v1", "READY")), "v9")
    message = str(excinfo.value)
    assert "'v9'" in message and "v2, v1" in message and "prediction.model_version" in message


def test_no_model_says_how_to_train() -> None:
    for versions in (_versions(), _versions(("v1", "RETIRED"))):
        with pytest.raises(MissingModelError, match="kedro run --pipelines training"):
            active_version(versions)
    with pytest.raises(MissingModelError):  # a pin on an empty table: there is no model at all
        active_version(_versions(), "v1")
    with pytest.raises(UnknownModelVersionError):
        load_version(_versions(("v1", "READY")), "v2")


def test_segment_ids_and_drift_reference_round_trip_through_json(model: SegmentationModel) -> None:
    from dataclasses import replace

    reference = {
        "customers": 3,
        "bins": {"A": {"edges": [0.1, 1 / 3], "proportions": [0.25, 0.5, 0.25]}},
        "segment_shares": [0.5, 0.5],
        "mean_distance": [0.2, float("nan")],
        "overall_mean_distance": 0.7,
    }
    ids = [5, *range(1, model.k)]
    stable = replace(model, segment_ids=ids, drift_reference=reference)
    back = SegmentationModel.from_record(json.loads(json.dumps(stable.to_record(), allow_nan=False)))
    assert back.ids() == ids and back.segment_id_of(np.array([0, 1])).tolist() == ids[:2]
    assert back.reference()["bins"] == reference["bins"]  # bin edges exact: drift bins the same customers
    assert back.reference()["mean_distance"] == [0.2, None]  # NaN comes back as null
