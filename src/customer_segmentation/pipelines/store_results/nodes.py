"""PROCESSED_DATA: one row per customer, replaced on every run (never duplicated)."""

from __future__ import annotations

from typing import Any

from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

LEADING_COLUMNS = [
    "CUSTOMER_ID",
    "SEGMENT_ID",
    "SEGMENT_LABEL",
    "IS_NEW_CUSTOMER",
    "PREVIOUS_SEGMENT_LABEL",
    "R_SCORE",
    "F_SCORE",
    "M_SCORE",
    "RFM_SCORE",
    "RFM_SEGMENT",
    "DISTANCE_TO_CENTROID",
]


def build_processed_data(scored_customers: DataFrame, run_metadata: dict[str, Any]) -> DataFrame:
    """Scored customers with run id and scoring time, key columns first, one row per customer."""
    rest = [c for c in scored_customers.columns if c not in LEADING_COLUMNS and c != "MODEL_VERSION"]
    return scored_customers.select(
        *LEADING_COLUMNS,
        *rest,
        "MODEL_VERSION",
        F.lit(str(run_metadata.get("run_id") or "")).alias("RUN_ID"),
        F.lit(str(run_metadata["started_at"])).cast("timestamp_ntz").alias("SCORED_AT"),
    )
