"""The ``monitoring`` parameters (conf/base/parameters_monitoring.yml), validated before the run."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, model_validator

from customer_segmentation.drift import DEFAULT_THRESHOLDS
from customer_segmentation.parameters import Parameters

_Threshold = Annotated[float, Field(ge=0.0)]


class DriftThresholds(Parameters):
    """SEGMENT_DRIFT thresholds: each measure is ``watch`` from the first, ``retrain`` from the second."""

    psi_watch: _Threshold = DEFAULT_THRESHOLDS["psi_watch"]
    psi_retrain: _Threshold = DEFAULT_THRESHOLDS["psi_retrain"]
    share_shift_watch: _Threshold = DEFAULT_THRESHOLDS["share_shift_watch"]
    share_shift_retrain: _Threshold = DEFAULT_THRESHOLDS["share_shift_retrain"]
    distance_ratio_watch: _Threshold = DEFAULT_THRESHOLDS["distance_ratio_watch"]
    distance_ratio_retrain: _Threshold = DEFAULT_THRESHOLDS["distance_ratio_retrain"]

    @model_validator(mode="after")
    def _watch_before_retrain(self) -> DriftThresholds:
        for measure in ("psi", "share_shift", "distance_ratio"):
            watch, retrain = getattr(self, f"{measure}_watch"), getattr(self, f"{measure}_retrain")
            if watch > retrain:
                raise ValueError(
                    f"monitoring.drift_thresholds.{measure}_watch ({watch}) must not exceed "
                    f"monitoring.drift_thresholds.{measure}_retrain ({retrain})."
                )
        return self


class MonitoringParams(Parameters):
    """History retention, segment profiles and drift thresholds of the monitoring pipeline."""

    section = "monitoring"

    # days of SEGMENT_HISTORY kept; None keeps everything
    history_retention_days: Annotated[int, Field(ge=1)] | None = 730
    profile_top_features: Annotated[int, Field(ge=0)] = 3
    drift_thresholds: DriftThresholds = DriftThresholds()
    # suggested action per classic RFM segment; `default` for the others (marketing edits the YAML)
    playbook: dict[str, str] = {}
