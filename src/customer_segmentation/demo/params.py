"""The ``demo_data`` parameters (conf/base/parameters.yml), validated before the run.

Read by the ingestion pipeline's seed node, by load_events (the tables its demo purge drops) and
by simulate_days (the demo population to continue). The generator's keyword defaults are these.
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from pydantic import Field

from customer_segmentation.demo.marker import DEMO_SOURCE_PREFIX
from customer_segmentation.parameters import Parameters

#: Tables built from RAW_DATA, dropped with the demo at the first user load.
DEFAULT_DERIVED_TABLES = (
    "TRANSFORMED_DATA",
    "REJECTED_EVENTS",
    "INGESTION_STATE",
    "CUSTOMER_FEATURES",
    "SCORED_CUSTOMERS",
    "PROCESSED_DATA",
    "SEGMENTATION_MODELS",
    "MODEL_K_SELECTION",
    "MODEL_SEGMENTS",
    "SEGMENT_SUMMARY",
    "SEGMENT_HISTORY",
    "SEGMENT_MIGRATIONS",
    "SEGMENT_FLOWS",
    "SEGMENT_CHANGES",
    "SEGMENT_PUBLISHED",
    "SEGMENT_CHANGES_LEGACY",
    "SEGMENT_PROFILES",
    "SEGMENT_DRIFT",
    "CUSTOMER_AGGREGATES",
    "CUSTOMER_DAILY_SPEND",
    "CUSTOMER_AGGREGATES_STATE",
    "DEMO_CLOCK",
    "CUSTOMER_VALUE",
    "CUSTOMER_VALUE_MODELS",
    "SEGMENT_OUTCOMES",
)
#: The fields that shape the generated events (keyword arguments of ``generate_events``).
GENERATOR_FIELDS = ("n_customers", "end_date", "history_days", "defect_rate", "seed", "loaded_at", "source")


class DemoDataParams(Parameters):
    """Whether and where the demo is seeded, and the shape of its deterministic events."""

    section = "demo_data"

    enabled: bool = True
    seed_snowflake: bool = False  # True also seeds an EMPTY RAW_DATA on real Snowflake
    n_customers: Annotated[int, Field(ge=1)] = 2000
    end_date: date = date(2026, 10, 31)
    history_days: Annotated[int, Field(ge=1)] = 730
    defect_rate: Annotated[float, Field(ge=0.0, le=1.0)] = 0.01
    seed: int = 11
    loaded_at: str = "2026-11-01 06:00:00"
    source: Annotated[str, Field(pattern=f"^{DEMO_SOURCE_PREFIX}")] = (
        DEMO_SOURCE_PREFIX + "faker-fr_FR-seed-11"
    )
    derived_tables: list[str] = list(DEFAULT_DERIVED_TABLES)

    def generator_args(self) -> dict[str, Any]:
        """The keyword arguments of ``generate_events`` (end_date as text)."""
        args = self.model_dump(include=set(GENERATOR_FIELDS))
        args["end_date"] = self.end_date.isoformat()
        return args
