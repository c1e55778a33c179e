"""k selection and the stability bootstrap run on a bounded random subset of the training sample."""

from __future__ import annotations

from customer_segmentation.pipelines.training.nodes import (
    choose_k,
    evaluate_k_range,
    fit_segmentation_model,
    measure_stability,
)
from customer_segmentation.segmentation_training import k_selection_rows
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


def test_small_samples_are_used_whole() -> None:
    sample = planted_customers(100)
    assert k_selection_rows(sample, PARAMS.of(PARAMS, k_selection_sample_size=300)) is sample


def test_the_subset_is_bounded_deterministic_and_drawn_from_every_part_of_the_sample() -> None:
    # the sample is in CUSTOMER_ID order and the planted groups are contiguous: a head would hold one group
    sample = planted_customers(300)
    params = PARAMS.of(PARAMS, k_selection_sample_size=150)
    rows = k_selection_rows(sample, params)
    assert len(rows) == 150
    assert rows.equals(k_selection_rows(sample, params))
    groups = rows["CUSTOMER_ID"].str[:2].value_counts()
    assert set(groups.index) == {"C0", "C1", "C2"} and groups.min() >= 30
    assert not rows.equals(k_selection_rows(sample, params.of(params, random_state=12)))


def test_k_choice_and_stability_on_the_subset_match_the_whole_sample() -> None:
    sample = planted_customers(300)
    bounded = PARAMS.of(PARAMS, k_selection_sample_size=150)
    whole = PARAMS.of(PARAMS, k_selection_sample_size=len(sample))
    on_subset = evaluate_k_range(sample, bounded)
    on_whole = evaluate_k_range(sample, whole)
    assert on_subset["k"].tolist() == on_whole["k"].tolist()
    assert choose_k(on_subset, bounded)["k"] == choose_k(on_whole, whole)["k"] == 3
    model = fit_segmentation_model(sample, {"k": 3, "source": "test"}, bounded, {"run_id": "v"})
    assert measure_stability(sample, model, bounded)["ari_mean"] > 0.95
