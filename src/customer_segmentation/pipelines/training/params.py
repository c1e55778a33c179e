"""The ``training`` parameters (conf/base/parameters_training.yml), validated before the run."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, ValidatorFunctionWrapHandler, field_validator, model_validator

from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.parameters import Parameters

logger = logging.getLogger(__name__)

#: The classic RFM columns: the model must use them (segments are named after their members' RFM).
RFM = ("RECENCY_DAYS", "FREQUENCY", "MONETARY")
#: The default features with a long right tail: log1p-transformed before scaling.
_SKEWED = (
    "RECENCY_DAYS",
    "FREQUENCY",
    "MONETARY",
    "AVG_ORDER_VALUE",
    "TENURE_DAYS",
    "DISTINCT_CATEGORIES",
)


class RetrainSchedule(Parameters):
    """``retrain_policy: {max_age_days: N, on_drift: true|false}``."""

    max_age_days: Annotated[int, Field(ge=1)]
    on_drift: bool = False


class TrainingParams(Parameters):
    """How the model is trained (k range, sample sizes, features) and when the daily job retrains it."""

    section = "training"

    sample_size: Annotated[int, Field(ge=10)] = 200_000
    features: Annotated[list[str], Field(min_length=1)] = [
        *_SKEWED,
        "RETURN_RATE",
        "CANCELLATION_RATE",
        "SPEND_TREND",
    ]
    log_features: list[str] = list(_SKEWED)
    k_min: Annotated[int, Field(ge=2)] = 2
    k_max: Annotated[int, Field(ge=2)] = 10
    k: Annotated[int, Field(ge=2)] | None = None  # overrides the elbow
    n_init: Annotated[int, Field(ge=1)] = 4
    random_state: int = 11
    silhouette_sample_size: Annotated[int, Field(ge=2)] = 10_000
    # k selection and the bootstrap stability refit on the first rows of the (randomly ordered)
    # sample: the inertia curve and the ARI settle long before 200k rows; the final fit uses all
    k_selection_sample_size: Annotated[int, Field(ge=10)] = 50_000
    bootstrap_rounds: Annotated[int, Field(ge=0)] = 5
    scatter_sample_size: Annotated[int, Field(ge=1)] = 3000
    identity_min_overlap: Annotated[float, Field(ge=0.0, le=1.0)] = 0.3
    drift_bins: Annotated[int, Field(ge=2)] = 10
    # null is the same as never (older configurations wrote it)
    retrain_policy: Literal["never", "on_drift"] | RetrainSchedule | None = "never"
    keep_k_on_retrain: bool = True
    # no longer used: the fit does not start from the previous model (kept so that older
    # configurations still validate; a value set is answered with a warning, see _no_warm_start)
    warm_start_tolerance: float | None = None
    # strict: "5", 2.5 or true are typos, not 5 versions
    keep_model_versions: Annotated[int, Field(ge=1, strict=True)] = 20

    @field_validator("retrain_policy", mode="wrap")
    @classmethod
    def _one_message_for_the_policy(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        try:
            return handler(value)
        except (ValidationError, InvalidParametersError):
            raise ValueError(
                "must be never, on_drift or {max_age_days: N} (N >= 1, optionally with on_drift: true)"
            ) from None

    @field_validator("warm_start_tolerance")
    @classmethod
    def _no_warm_start(cls, value: float | None) -> float | None:
        if value is not None:
            logger.warning(
                "training.warm_start_tolerance (%s) no longer has an effect: a fit depends on the sample and "
                "the parameters only, and segment ids and labels carry over by matching (docs/monitoring.md). "
                "Remove it from your parameters.",
                value,
            )
        return value

    @field_validator("features", "log_features")
    @classmethod
    def _no_duplicates(cls, names: list[str]) -> list[str]:
        if len(set(names)) != len(names):
            raise ValueError(f"lists a feature twice: {names}")
        return names

    @model_validator(mode="after")
    def _consistent(self) -> TrainingParams:
        if self.k_max < self.k_min:
            raise ValueError(
                f"training.k_min/k_max must satisfy 2 <= k_min <= k_max, got k_min={self.k_min}, k_max={self.k_max}."
            )
        missing = [f for f in self.log_features if f not in self.features]
        if missing:
            raise ValueError(
                f"training.log_features must be a subset of training.features (missing from features: {missing})."
            )
        absent = [f for f in RFM if f not in self.features]
        if absent:
            raise ValueError(
                f"training.features must include {', '.join(RFM)} (used to name segments); missing {absent}."
            )
        return self

    def retrain_rule(self) -> tuple[bool, int | None]:
        """(retrain on drift?, maximum model age in days or None)."""
        policy = self.retrain_policy
        if isinstance(policy, RetrainSchedule):
            return policy.on_drift, policy.max_age_days
        return policy == "on_drift", None
