"""The columns that stamp a row with the run that computed it (shared by prediction and store_results)."""

from __future__ import annotations

from typing import Any

from snowflake.snowpark import functions as F

#: Column names of the stamps, in table order.
STAMP_COLUMNS = ("RUN_ID", "SCORED_AT")


def run_stamps(run_metadata: dict[str, Any]) -> list[Any]:
    """RUN_ID and SCORED_AT columns of a run: its id, and its start as TIMESTAMP_NTZ (hooks.py sets both)."""
    return [
        F.lit(str(run_metadata.get("run_id") or "")),
        F.lit(str(run_metadata["started_at"])).cast("timestamp_ntz"),
    ]
