"""Training nodes: the procedure of ``segmentation_training`` (k selection, fit, naming, identity,
stability), the bounded sample of ``segmentation_sample``, and the steps that read the active model
from the warehouse. The charts are drawn by the ``reporting`` pipeline.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from customer_segmentation.datasets.model_table import ModelVersionWrite
from customer_segmentation.model import SegmentationModel, active_model_or_none
from customer_segmentation.pipelines.prediction.params import PredictionParams
from customer_segmentation.pipelines.training.params import TrainingParams
from customer_segmentation.segmentation_sample import sample_customer_features
from customer_segmentation.segmentation_training import (
    align_segment_identity,
    choose_k,
    evaluate_k_range,
    fit_segmentation_model,
    measure_stability,
    model_version_write,
    retain_previous_k,
    training_metrics,
)

__all__ = [
    "align_segment_identity",
    "align_with_active_model",
    "choose_k",
    "evaluate_k_range",
    "fit_from_active_model",
    "fit_segmentation_model",
    "measure_stability",
    "register_model_version",
    "retain_active_k",
    "retain_previous_k",
    "sample_customer_features",
    "training_metrics",
]


# --- the model version in the warehouse ---------------------------------------------------------


def register_model_version(
    model: SegmentationModel,
    k_selection: pd.DataFrame,
    k_choice: dict[str, Any],
    stability: dict[str, Any],
    sample: pd.DataFrame,
    params: TrainingParams,
    prediction_params: PredictionParams,
    run_metadata: dict[str, Any],
) -> ModelVersionWrite:
    """The model, its training metrics and k selection as one warehouse record (old versions pruned)."""
    # the full training metrics travel with the model: one atomic write, readable with PARSE_JSON
    metrics = training_metrics(k_selection, k_choice, stability, model, sample)
    return model_version_write(model, metrics, params, prediction_params, run_metadata)


# The nodes below read the active model from the warehouse (SEGMENTATION_MODELS as loaded before
# this run writes it; the pinned version if prediction.model_version is set) and hand it to the
# steps above. The active model is None before the first training, and Kedro cannot pass None
# between nodes, so each step resolves it itself (a cheap decode of one JSON row).


def retain_active_k(
    k_choice: dict[str, Any],
    model_versions: pd.DataFrame,
    params: TrainingParams,
    prediction_params: PredictionParams,
) -> dict[str, Any]:
    """``retain_previous_k`` against the active model in the warehouse."""
    previous = active_model_or_none(model_versions, prediction_params.model_version)
    return retain_previous_k(k_choice, previous, params)


def fit_from_active_model(
    sample: pd.DataFrame,
    k_choice: dict[str, Any],
    params: TrainingParams,
    run_metadata: dict[str, Any],
    model_versions: pd.DataFrame,
    prediction_params: PredictionParams,
) -> SegmentationModel:
    """``fit_segmentation_model`` warm-started from the active model in the warehouse (when there is one)."""
    previous = active_model_or_none(model_versions, prediction_params.model_version)
    return fit_segmentation_model(sample, k_choice, params, run_metadata, previous)


def align_with_active_model(
    model: SegmentationModel,
    model_versions: pd.DataFrame,
    sample: pd.DataFrame,
    params: TrainingParams,
    prediction_params: PredictionParams,
) -> SegmentationModel:
    """``align_segment_identity`` against the active model in the warehouse."""
    previous = active_model_or_none(model_versions, prediction_params.model_version)
    return align_segment_identity(model, previous, sample, params)
