"""PROCESSED_DATA: one row per customer, replaced on every run (never duplicated)."""

from __future__ import annotations

from typing import Any

from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation.run_stamps import STAMP_COLUMNS, run_stamps

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
    """Scored customers with run id and scoring time, key columns first, one row per customer.

    RUN_ID and SCORED_AT are the scoring run's, as prediction stamped them on SCORED_CUSTOMERS (then
    this is a plain reorder of its columns); rows scored by an older version without stamps get
    this run's.
    """
    columns = scored_customers.columns
    stamps = STAMP_COLUMNS
    rest = [c for c in columns if c not in LEADING_COLUMNS and c not in ("MODEL_VERSION", *stamps)]
    if all(c in columns for c in stamps):
        stamped = [F.col(c) for c in stamps]
    else:
        stamped = [value.alias(name) for name, value in zip(stamps, run_stamps(run_metadata))]
    return scored_customers.select(*LEADING_COLUMNS, *rest, "MODEL_VERSION", *stamped)
