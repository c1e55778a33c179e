"""SegmentationModel learns and applies the one transform used by k selection, fitting, stability
and scoring; checked against an independent numpy/scikit-learn computation of the same numbers
(log1p of the clipped skewed features, population mean and standard deviation, KMeans)."""

from __future__ import annotations

from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.cluster import KMeans

from customer_segmentation.model import SegmentationModel
from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
from customer_segmentation.pipelines.training.params import TrainingParams
from tests.conftest import PROJECT_ROOT
from tests.pipelines.prediction.test_nodes import random_customers
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


def independent_scaling(
    frame: pd.DataFrame, features: list[str], logs: list[str]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scaled matrix, means, scales), written out column by column with pandas."""
    columns = {}
    for name in features:
        values = frame[name].astype(float).fillna(0.0)
        columns[name] = np.log1p(values.clip(lower=0.0)) if name in logs else values
    table = pd.DataFrame(columns)
    means = table.mean().to_numpy()
    scales = table.std(ddof=0).replace(0.0, 1.0).to_numpy()
    return ((table - means) / scales).to_numpy(), means, scales


def test_learnt_transform_equals_the_independent_computation() -> None:
    # zeros, negatives, missing values and a constant feature: the cases the transform must handle
    customers = random_customers(500).assign(CONSTANT=3.0)
    customers.loc[::17, "FREQUENCY"] = np.nan
    features = ["RECENCY_DAYS", "FREQUENCY", "MONETARY", "RETURN_RATE", "CONSTANT"]
    logs = ["FREQUENCY", "MONETARY"]
    space = SegmentationModel.learn_transform(customers, features, logs)
    scaled, means, scales = independent_scaling(customers, features, logs)
    np.testing.assert_allclose(space.means, means, rtol=1e-12)
    np.testing.assert_allclose(space.scales, scales, rtol=1e-12)
    assert space.scales[-1] == 1.0 and space.k == 0
    np.testing.assert_allclose(space.transform(customers), scaled, rtol=1e-12, atol=1e-12)
    # other customers go through the learnt means and scales, not their own
    others = random_customers(50, seed=9).assign(CONSTANT=5.0)
    np.testing.assert_allclose(space.transform(others)[:, -1], (5.0 - 3.0) / 1.0)


def test_fitted_model_equals_kmeans_on_the_independent_scaling() -> None:
    sample = planted_customers()
    model = fit_segmentation_model(sample, {"k": 3, "source": "test"}, PARAMS, {"run_id": "v"})
    scaled, means, scales = independent_scaling(sample, PARAMS.features, PARAMS.log_features)
    reference = KMeans(n_clusters=3, n_init=10, random_state=0).fit(scaled)
    labels = model.predict(sample)
    # the same partition as scikit-learn's on well-separated groups (cluster numbers aside) ...
    pairs = pd.crosstab(labels, reference.labels_)
    assert ((pairs > 0).sum(axis=1) == 1).all() and ((pairs > 0).sum(axis=0) == 1).all()
    order = pairs.to_numpy().argmax(axis=1)
    np.testing.assert_allclose(model.centroids, reference.cluster_centers_[order], rtol=1e-9, atol=1e-12)
    # ... and each centroid exactly the mean of its members (the fixed point the fit settles on)
    member_means = pd.DataFrame(scaled).groupby(labels).mean().to_numpy()
    np.testing.assert_allclose(model.centroids, member_means, rtol=1e-12, atol=1e-12)
    # the stored record scores like the fitted model
    restored = SegmentationModel.from_record(model.to_record())
    np.testing.assert_array_equal(restored.predict(sample), labels)
    np.testing.assert_array_equal(restored.transform(sample), model.transform(sample))


@pytest.mark.integration
def test_demo_model_is_reproduced_from_its_training_sample(trained_project: Path) -> None:
    """The model the default run stored, refitted from its training sample with the configured
    parameters and the independent scaling: the same means, scales and centroids."""
    sample = pd.read_parquet(trained_project / "data/05_model_input/training_sample.parquet")
    versions = sorted((trained_project / "data/06_models/segmentation_model.joblib").iterdir())
    stored: SegmentationModel = joblib.load(versions[-1] / "segmentation_model.joblib")
    conf = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())["training"]
    params = TrainingParams.of(conf)
    _, means, scales = independent_scaling(sample, params.features, params.log_features)
    np.testing.assert_allclose(stored.means, means, rtol=1e-12)
    np.testing.assert_allclose(stored.scales, scales, rtol=1e-12)
    refit = fit_segmentation_model(sample, {"k": stored.k, "source": "test"}, params, {"run_id": "again"})
    np.testing.assert_array_equal(refit.centroids, stored.centroids)
    assert refit.labels == stored.labels
