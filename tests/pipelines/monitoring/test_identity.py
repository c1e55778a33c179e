"""Stable segment identity: ids follow the members across refits; new clusters get new ids."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from customer_segmentation.model import SegmentationModel
from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
from customer_segmentation.pipelines.training.params import TrainingParams
from customer_segmentation.segment_identity import (
    align_segment_ids,
    contingency,
    match_clusters,
    next_free_id,
    previous_centroids_in_space,
    splits_and_merges,
)
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


def fit(sample: pd.DataFrame, k: int, seed: int, previous=None):
    params = TrainingParams.of(PARAMS, random_state=seed, n_init=1)
    return fit_segmentation_model(
        sample, {"k": k, "source": "test"}, params, {"run_id": f"m{seed}-{k}"}, previous
    )


def group_ids(model, sample: pd.DataFrame) -> dict[int, int]:
    """Majority SEGMENT_ID of each planted group (independent of the matching code)."""
    ids = model.segment_id_of(model.predict(sample))
    return {g: int(pd.Series(ids[sample["GROUP"] == g]).mode()[0]) for g in sorted(sample["GROUP"].unique())}


def test_contingency_and_matching_on_a_hand_made_table() -> None:
    table = contingency(np.array([0, 0, 1, 1, 2, 2, 2]), np.array([1, 1, 0, 0, 2, 2, 0]), 3, 3)
    assert table.tolist() == [[0, 2, 0], [2, 0, 0], [1, 0, 2]]
    assert match_clusters(table) == {0: 1, 1: 0, 2: 2}
    # pairs under the overlap floor stay unmatched
    assert match_clusters(table, min_overlap=0.99) == {0: 1}  # Jaccard 1.0; the others 2/3


def test_splits_and_merges_are_reported() -> None:
    table = np.array([[50, 0], [50, 0], [0, 100]])  # old 7 split into new 1 and 2
    assert splits_and_merges(table, [1, 2, 3], [7, 8]) == {
        "splits": [{"segment_id": 7, "into": [1, 2]}],
        "merges": [],
    }
    table = np.array([[50, 50], [0, 100]])  # new 4 is drawn from old 7 and 8
    assert splits_and_merges(table, [4, 5], [7, 8])["merges"] == [{"segment_id": 4, "from": [7, 8]}]


def test_first_model_gets_ids_0_to_k_minus_1() -> None:
    sample = planted_customers(100)
    model = align_segment_ids(fit(sample, 3, 1), None, sample)
    assert model.ids() == [0, 1, 2]
    assert model.metrics["identity"]["next_segment_id"] == 3


def test_ids_and_labels_follow_the_members_whatever_the_seed() -> None:
    sample = planted_customers(150)
    first = align_segment_ids(fit(sample, 3, 1), None, sample)
    reordered = 0
    for seed in (2, 3, 4, 5):
        # a refit with another seed numbers its clusters in its own order
        refit = fit(sample, 3, seed)
        reordered += group_ids(refit, sample) != group_ids(first, sample)
        aligned = align_segment_ids(refit, first, sample)
        assert group_ids(aligned, sample) == group_ids(first, sample)
        labels_first = dict(zip(first.ids(), first.labels))
        assert all(labels_first[i] == label for i, label in zip(aligned.ids(), aligned.labels))
        assert aligned.metrics["identity"]["same_segment_share"] > 0.99
        assert sorted(aligned.ids()) == [0, 1, 2]
    assert reordered  # the matching had something to do


def test_an_unmatched_cluster_gets_a_never_used_id() -> None:
    sample = planted_customers(150)
    three = align_segment_ids(fit(sample, 3, 1), None, sample)
    four = align_segment_ids(fit(sample, 4, 1), three, sample)
    assert sorted(four.ids())[:3] == [0, 1, 2] and 3 in four.ids()
    report = four.metrics["identity"]
    assert report["new_ids"] == [3] and report["splits"]  # one planted group was cut in two
    assert len(set(four.labels)) == 4  # the new cluster cannot take a kept label
    back = align_segment_ids(fit(sample, 3, 7), four, sample)
    assert back.metrics["identity"]["retired_ids"]  # one of the four ids is gone...
    assert next_free_id(back) == 4  # ...and never handed out again
    assert back.metrics["identity"]["merges"] or back.metrics["identity"]["retired_ids"] == [3]


def test_previous_model_with_other_features_matches_nothing() -> None:
    sample = planted_customers(60)
    first = align_segment_ids(fit(sample, 3, 1), None, sample)
    first.features = [*first.features, "NOT_IN_SAMPLE"]
    aligned = align_segment_ids(fit(sample, 3, 2), first, sample)
    assert aligned.ids() == [3, 4, 5]
    assert "other features" in aligned.metrics["identity"]["note"]


def test_previous_centroids_map_into_the_new_scaled_space() -> None:
    sample = planted_customers(80)
    model = fit(sample, 3, 1)
    same = previous_centroids_in_space(model, model)
    np.testing.assert_allclose(same, model.centroids)
    other = replace(model, means=model.means + 1, scales=model.scales * 2)
    shifted = previous_centroids_in_space(model, other)
    np.testing.assert_allclose(
        shifted * (model.scales * 2) + model.means + 1, model.centroids * model.scales + model.means
    )
    fewer = SegmentationModel.learn_transform(sample, model.features[:2], [])
    assert previous_centroids_in_space(model, fewer) is None


def perturbed(model: SegmentationModel, seed: int, scale: float) -> SegmentationModel:
    """The model with its centroids moved at random (``scale`` standard deviations per feature)."""
    rng = np.random.default_rng(seed)
    moved = model.centroids + rng.normal(0.0, scale, model.centroids.shape)
    return replace(model, centroids=moved, version=f"{model.version}-moved-{seed}")


def test_the_partition_comes_from_the_data_whatever_the_active_model() -> None:
    # three behaviours cut into five clusters: many near-equal local optima, where a fit started
    # from the active model's centroids would stay wherever that model was
    sample = planted_customers(150)
    first = align_segment_ids(fit(sample, 5, 1), None, sample)
    moved = []
    for previous in (perturbed(first, 0, 0.3), perturbed(first, 1, 1.5), perturbed(first, 2, 3.0)):
        refit = fit(sample, 5, 1, previous=previous)
        np.testing.assert_array_equal(refit.centroids, first.centroids)  # to the last bit
        moved.append(refit.metrics["partition"]["candidates"][0]["moved"])
    assert max(moved) > 0  # at least one of them was not a solution of this sample (and was ignored)
    # a rerun on unchanged data: the active model is a solution of this sample, and wins its tie
    again = fit(sample, 5, 1, previous=first)
    np.testing.assert_array_equal(again.centroids, first.centroids)
    assert again.metrics["partition"]["kept_active_model"]
    # a model fitted with another seed on the same sample is a solution too: it competes on inertia
    # (a reseed keeps it unless the new seed finds better), and whichever wins stays on a rerun
    other = fit(sample, 5, 2)
    reseeded = fit(sample, 5, 1, previous=other)
    winner = (
        other if other.metrics["partition"]["inertia"] <= first.metrics["partition"]["inertia"] else first
    )
    np.testing.assert_array_equal(reseeded.centroids, winner.centroids)
    np.testing.assert_array_equal(fit(sample, 5, 1, previous=reseeded).centroids, reseeded.centroids)
    # and the ids and labels carry over by matching: every customer keeps both
    aligned = align_segment_ids(again, first, sample)
    np.testing.assert_array_equal(
        aligned.segment_id_of(aligned.predict(sample)), first.segment_id_of(first.predict(sample))
    )
    assert aligned.label_of(aligned.predict(sample)) == first.label_of(first.predict(sample))
