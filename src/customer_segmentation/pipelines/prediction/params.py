"""The ``prediction`` parameters (conf/base/parameters_prediction.yml), validated before the run."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from customer_segmentation.parameters import Parameters


class PredictionParams(Parameters):
    """Which stored model version scores (and which one training and monitoring treat as active)."""

    section = "prediction"

    # a VERSION of SEGMENTATION_MODELS; None = the newest READY one
    model_version: str | None = None

    @field_validator("model_version", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str | None:
        # an empty pin is no pin; a version that YAML or --params read as a number is still a name
        return None if value in (None, "") else str(value)
