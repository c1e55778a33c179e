"""Drift measures: bins, PSI, the training reference and the status rule."""

from __future__ import annotations

import math

import numpy as np
import pytest

from customer_segmentation.drift import (
    bin_edges,
    bin_index,
    drift_status,
    proportions,
    psi,
    training_reference,
)
from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


def test_bins_follow_the_sql_rule_and_collapse_ties() -> None:
    edges = bin_edges(np.array([1, 1, 1, 1, 1, 1, 2, 3, 4, 5], dtype=float), 10)
    assert edges == sorted(set(edges)) and edges[0] == 1.0
    # a value equal to an edge goes above it (count of edges <= value)
    assert bin_index(np.array([0.5, 1.0, 4.99, 100.0]), [1.0, 2.0, 5.0]).tolist() == [0, 1, 2, 3]
    assert proportions(np.array([0.0, 1.0, 1.0, 9.0]), [1.0, 5.0]) == [0.25, 0.5, 0.25]


def test_psi_matches_the_textbook_formula() -> None:
    expected, actual = [0.5, 0.3, 0.2], [0.3, 0.3, 0.4]
    by_hand = sum((a - e) * math.log(a / e) for e, a in zip(expected, actual))
    assert psi(expected, actual) == pytest.approx(by_hand)
    assert psi(expected, expected) == 0.0
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) > 0  # empty bins are floored, not infinite
    with pytest.raises(ValueError, match="same bins"):
        psi([1.0], [0.5, 0.5])


def test_training_reference_describes_the_sample() -> None:
    sample = planted_customers(100)
    model = fit_segmentation_model(sample, {"k": 3, "source": "t"}, PARAMS, {"run_id": "r"})
    ref = model.reference()
    assert ref == training_reference(sample, model)
    assert sum(ref["segment_shares"]) == pytest.approx(1.0)
    positions = model.predict(sample)
    assert ref["segment_shares"] == [float((positions == k).mean()) for k in range(3)]
    for feature, spec in ref["bins"].items():
        assert len(spec["proportions"]) == len(spec["edges"]) + 1
        assert sum(spec["proportions"]) == pytest.approx(1.0)
    distances = np.linalg.norm(model.transform(sample) - model.centroids[positions], axis=1)
    assert ref["overall_mean_distance"] == pytest.approx(distances.mean())


@pytest.mark.parametrize(
    ("max_psi", "shift", "ratio", "status"),
    [
        (0.01, 0.01, 1.0, "ok"),
        (0.15, 0.01, 1.0, "watch"),
        (0.9, 0.01, 1.0, "watch"),  # feature drift alone (recency, tenure move with the calendar)
        (0.9, 0.06, 1.0, "retrain_recommended"),  # ... with segments moving too
        (0.9, 0.01, 1.2, "retrain_recommended"),
        (0.01, 0.12, 1.0, "retrain_recommended"),
        (0.01, 0.01, 1.35, "retrain_recommended"),
        (0.01, 0.07, 1.0, "watch"),
        (float("nan"), float("nan"), float("nan"), "ok"),
    ],
)
def test_status_rule(max_psi: float, shift: float, ratio: float, status: str) -> None:
    got, reasons = drift_status(max_psi, shift, ratio)
    assert got == status
    assert bool(reasons) == (status != "ok")


def test_thresholds_come_from_parameters() -> None:
    assert drift_status(0.01, 0.03, 1.0, {"share_shift_watch": 0.02, "share_shift_retrain": 0.025})[0] == (
        "retrain_recommended"
    )
