"""The ``simulate_days`` parameters (conf/base/parameters_simulate_days.yml), validated before the run."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import Field, field_validator

from customer_segmentation.parameters import Parameters


class SimulateDaysParams(Parameters):
    """How many demo days to append, and how they differ from ordinary days."""

    section = "simulate_days"

    days: Annotated[int, Field(ge=1, le=3650)] = 1
    seed: int | None = None  # None = demo_data.seed
    # personas with no order in these days: champion, loyal, occasional, churned, new
    silent_personas: list[str] = []
    arrival_multiplier: Annotated[float, Field(ge=0.0, le=1000.0)] = 1.0

    @field_validator("silent_personas", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # `kedro run --params` splits on ',', so the command line separates personas with ';'
        if not value:
            return []
        items = re.split(r"[;,]", value) if isinstance(value, str) else list(value)
        return [str(v).strip() for v in items if str(v).strip()]
