"""The memory-bounded silhouette used by evaluate_k_range equals scikit-learn's silhouette_score."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import silhouette_score

from customer_segmentation.segmentation_training import _silhouette


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
