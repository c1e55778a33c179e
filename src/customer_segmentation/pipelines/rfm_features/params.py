"""The ``rfm_features`` parameters (conf/base/parameters_rfm_features.yml), validated before the run."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from pydantic import Field

from customer_segmentation.parameters import Parameters


class RfmFeaturesParams(Parameters):
    """The reference date, trend window and sales channels of the customer features."""

    section = "rfm_features"

    # None = the demo clock's date on the demo (demo/clock.py), else the day after the latest valid event
    reference_date: date | None = None
    trend_window_days: Annotated[int, Field(ge=1)] = 90
    channels: list[str] = ["web", "app", "store", "marketplace"]
