"""Reporting nodes: the training charts show what training chose and fitted."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.model import SegmentationModel
from customer_segmentation.pipelines.reporting.nodes import (
    plot_elbow,
    plot_rfm_scatter,
    plot_segment_profiles,
    plot_silhouette,
)
from customer_segmentation.pipelines.training.nodes import evaluate_k_range, fit_segmentation_model
from customer_segmentation.pipelines.training.params import TrainingParams
from tests.pipelines.training.test_nodes import PARAMS, planted_customers

CHOICE = {"k": 3, "source": "elbow (kneed)"}


@pytest.fixture(scope="module")
def trained() -> tuple[pd.DataFrame, pd.DataFrame, SegmentationModel]:
    sample = planted_customers(100)
    model = fit_segmentation_model(sample, CHOICE, PARAMS, {"run_id": "v"})
    return sample, evaluate_k_range(sample, PARAMS), model


def test_elbow_and_silhouette_show_every_k_and_mark_the_choice(trained: tuple) -> None:
    _, selection, _ = trained
    elbow = plot_elbow(selection, CHOICE)
    assert list(elbow.data[0].x) == selection["k"].tolist()
    assert list(elbow.data[0].y) == selection["inertia"].tolist()
    star = elbow.data[1]
    assert list(star.x) == [3] and "chosen k=3 (elbow (kneed))" in star.name
    silhouette = plot_silhouette(selection, CHOICE)
    assert [trace.name for trace in silhouette.data] == ["silhouette", "Davies-Bouldin"]
    assert list(silhouette.data[0].y) == selection["silhouette"].tolist()
    assert silhouette.layout.shapes[0].x0 == 3
    # a chosen k outside the evaluated range (training.k) is not starred on the elbow
    assert len(plot_elbow(selection, {"k": 9, "source": "override"}).data) == 1


def test_segment_profiles_are_the_centroids(trained: tuple) -> None:
    _, _, model = trained
    heatmap = plot_segment_profiles(model).data[0]
    np.testing.assert_array_equal(np.asarray(heatmap.z), model.centroids)
    assert list(heatmap.x) == model.features and list(heatmap.y) == model.labels


def test_rfm_scatter_samples_and_colours_by_segment(trained: tuple) -> None:
    sample, _, model = trained
    fig = plot_rfm_scatter(sample, model, TrainingParams.of(PARAMS, scatter_sample_size=120))
    points = sum(len(trace.x) for trace in fig.data)
    assert points == 120
    assert {trace.name for trace in fig.data} <= set(model.labels)
    whole = plot_rfm_scatter(sample, model, TrainingParams.of(PARAMS, scatter_sample_size=10_000))
    assert sum(len(trace.x) for trace in whole.data) == len(sample)
    # each point is coloured by the segment the model places it in (checked on the whole sample)
    expected = pd.Series(model.label_of(model.predict(sample))).value_counts().to_dict()
    assert {trace.name: len(trace.x) for trace in whole.data} == expected
    # drawn as plotly.express drew it: frequency on a log axis, small translucent markers, one colour each
    scene = whole.layout.scene
    assert scene.yaxis.type == "log" and scene.xaxis.title.text == "RECENCY_DAYS"
    assert all(t.marker.size == 3 and t.marker.opacity == 0.6 for t in whole.data)
    assert len({t.marker.color for t in whole.data}) == len(whole.data)
