"""The morning job's retrain decision: keep the active model, or retrain it and keep segment identities.

``training.retrain_policy``: ``never`` (default), ``on_drift`` (the latest SEGMENT_DRIFT status
of the active model is ``retrain_recommended``), or ``{max_age_days: N}`` (the model is N or more
days old; add ``on_drift: true`` to combine both). The decision uses what the previous runs
measured, so a shift seen by yesterday's run is acted on this morning, before scoring.
"""

from __future__ import annotations

import logging
from datetime import date
from typing import Any

import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation.datasets.model_table import ModelVersionWrite
from customer_segmentation.model import SegmentationModel, select_active_model
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

logger = logging.getLogger(__name__)


def select_current_model(model_versions: pd.DataFrame, params: PredictionParams) -> SegmentationModel:
    """The active model as stored before this run (the pinned one, or the newest): what the policy judges."""
    return select_active_model(model_versions, params.model_version)


def decide_retrain(
    params: TrainingParams, latest_status: str | None, model_age_days: int
) -> tuple[bool, str]:
    """Whether to retrain now under ``training.retrain_policy``, and why (pure; unit-tested)."""
    on_drift, max_age = params.retrain_rule()
    if on_drift and latest_status == "retrain_recommended":
        return True, "the latest drift status of the active model is retrain_recommended"
    if max_age is not None and model_age_days >= max_age:
        return True, f"the active model is {model_age_days} days old (max_age_days: {max_age})"
    return (
        False,
        f"policy {params.model_dump()['retrain_policy']!r}: drift status {latest_status or 'not measured yet'}, model age {model_age_days} days",
    )


def latest_drift_status(segment_drift: DataFrame, model_version: str) -> str | None:
    """The STATUS of the latest SEGMENT_DRIFT row of a model version (None when never measured)."""
    rows = (
        segment_drift.filter(F.col("MODEL_VERSION") == F.lit(model_version))
        .sort(F.col("MEASURED_AT").desc(), F.col("SNAPSHOT_DATE").desc())
        .select("STATUS")
        .limit(1)
        .collect()
    )
    return str(rows[0][0]) if rows else None


def refresh_model(
    customer_features: DataFrame,
    segmentation_model: SegmentationModel,
    segment_drift_previous: DataFrame,
    params: TrainingParams,
    prediction_params: PredictionParams,
    run_metadata: dict[str, Any],
) -> SegmentationModel:
    """The model to score with today: the active one, or a retrained one with the same segment ids."""
    pinned = prediction_params.model_version
    if pinned is not None:
        # a pin is a rollback: a retrain would be stored but never used while the pin holds
        logger.info("prediction.model_version pins %s: the retrain policy is not applied", pinned)
        return segmentation_model
    status = latest_drift_status(segment_drift_previous, segmentation_model.version)
    trained = date.fromisoformat(str(segmentation_model.trained_at)[:10])
    age = (date.fromisoformat(str(run_metadata["started_at"])[:10]) - trained).days
    retrain, reason = decide_retrain(params, status, age)
    if not retrain:
        logger.info("Keeping model %s (%s)", segmentation_model.version, reason)
        return segmentation_model
    logger.warning("Retraining the segmentation model: %s", reason)
    sample = sample_customer_features(customer_features, params)
    k_selection = evaluate_k_range(sample, params)
    k_choice = retain_previous_k(choose_k(k_selection, params), segmentation_model, params)
    fitted = fit_segmentation_model(sample, k_choice, params, run_metadata, segmentation_model)
    model = align_segment_identity(fitted, segmentation_model, sample, params)
    stability = measure_stability(sample, model, params)
    # the same metrics a training run stores with its version (k selection, stability, identity)
    model.metrics = {
        **model.metrics,
        **training_metrics(k_selection, k_choice, stability, model, sample),
        "retrained_because": reason,
    }
    logger.warning(
        "Now scoring with retrained model %s (replaces %s)", model.version, segmentation_model.version
    )
    return model


def register_refreshed_model(
    refreshed_model: SegmentationModel,
    active_model: SegmentationModel,
    params: TrainingParams,
    prediction_params: PredictionParams,
    run_metadata: dict[str, Any],
) -> ModelVersionWrite:
    """A retrained model as a new version in the warehouse, as training stores it; nothing when kept."""
    if refreshed_model.version == active_model.version:
        return ModelVersionWrite(record=None)
    return model_version_write(refreshed_model, {}, params, prediction_params, run_metadata)
