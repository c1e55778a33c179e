"""The memory-bounded silhouettes used by evaluate_k_range equal scikit-learn's silhouette_score."""

from __future__ import annotations

import numpy as np
import pytest
import sklearn
from sklearn.metrics import silhouette_score

from customer_segmentation.segmentation_training import _silhouette, _silhouettes


@pytest.mark.parametrize("n, k, sample_size", [(600, 2, 600), (900, 5, 400), (300, 9, 10_000)])
def test_same_value_as_scikit_learn(n: int, k: int, sample_size: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, 6))
    labels = rng.integers(0, k, size=n)
    x[:, 0] += labels * 1.5
    expected = silhouette_score(x, labels, sample_size=min(sample_size, n), random_state=11)
    assert _silhouette(x, labels, min(sample_size, n), 11, chunk_mb=1) == pytest.approx(expected, abs=1e-12)


def test_singleton_clusters_score_zero_like_scikit_learn() -> None:
    x = np.random.default_rng(3).normal(size=(50, 3))
    labels = np.zeros(50, dtype=int)
    labels[0], labels[1:10] = 1, 2
    assert _silhouette(x, labels, 50, 3) == pytest.approx(
        silhouette_score(x, labels, sample_size=50, random_state=3)
    )


def test_shared_distances_give_each_labeling_scikit_learns_value() -> None:
    """One distance pass for every k: each value is scikit-learn's (same chunks; the per-cluster sums come
    from one matrix product instead of a bincount per row, so they agree to rounding, not bit for bit)."""
    rng = np.random.default_rng(7)
    x = rng.normal(size=(2_000, 9))
    labelings = [rng.integers(0, k, size=2_000) for k in (2, 3, 5, 10)]
    labelings.append(np.zeros(2_000, dtype=np.int32))  # one cluster: NaN, as evaluate_k_range reports it
    drawn_first = np.random.RandomState(11).permutation(2_000)[0]
    labelings.append(
        np.where(np.arange(2_000) == drawn_first, 1, 0)
    )  # a cluster of one (its value counts as 0)
    got = _silhouettes(x, labelings, 700, 11, chunk_mb=1)
    for labels, value in zip(labelings[:4] + labelings[5:], got[:4] + got[5:], strict=True):
        with sklearn.config_context(working_memory=1):
            assert value == pytest.approx(
                silhouette_score(x, labels, sample_size=700, random_state=11), rel=1e-13, abs=1e-15
            )
    assert np.isnan(got[4])
