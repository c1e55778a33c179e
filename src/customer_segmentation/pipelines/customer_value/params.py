"""The ``customer_value`` parameters (conf/base/parameters_customer_value.yml), validated before the run."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, field_validator

from customer_segmentation.parameters import Parameters


class CustomerValueParams(Parameters):
    """How customer value is fitted (sample, holdout) and scored (horizon, discount, margin), and which version scores."""

    section = "customer_value"

    # CLV and expected purchases look this many days ahead
    horizon_days: Annotated[int, Field(ge=1, le=3650, strict=True)] = 365
    # yearly rate the future spend is discounted at (0.10 = 10% a year)
    annual_discount_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.10
    # share of net spend that is profit; 1.0 gives CLV as discounted net revenue
    margin: Annotated[float, Field(gt=0.0, le=1.0)] = 1.0
    # the holdout check refits on the history up to this many days before the reference date
    holdout_days: Annotated[int, Field(ge=7, le=3650, strict=True)] = 180
    # customers drawn (deterministically) for a fit; only this bounded sample leaves the warehouse
    sample_size: Annotated[int, Field(ge=100, strict=True)] = 50_000
    random_state: int = 11
    # the holdout's total error (|predicted - actual| / actual repeat purchases) above which the run warns
    holdout_warning_error: Annotated[float, Field(gt=0.0)] = 0.25
    # SEGMENT_OUTCOMES: at most this many snapshots (oldest first) are measured per run (bounded work; later runs catch up)
    outcome_snapshots_per_run: Annotated[int, Field(ge=1, strict=True)] = 31
    # rollback: a VERSION of CUSTOMER_VALUE_MODELS to score with; null = the newest READY one
    model_version: str | None = None
    # value model versions kept in CUSTOMER_VALUE_MODELS (oldest pruned; the pinned one never)
    keep_model_versions: Annotated[int, Field(ge=1, strict=True)] = 20

    @field_validator("model_version", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> str | None:
        # an empty pin is no pin; a version that YAML or --params read as a number is still a name
        return None if value in (None, "") else str(value)
