"""The dry run's findings for one mapped source: columns, preview, what ingestion would reject and why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F
from snowflake.snowpark.types import StringType

from customer_segmentation.event_checks import is_zoned, with_checks
from customer_segmentation.sources.mapping import MappedSource
from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS


def _type_name(datatype: Any) -> str:
    """The Snowflake name of a Snowpark column type (what DESCRIBE TABLE would say)."""
    from snowflake.snowpark.types import DecimalType, TimestampType, _IntegralType

    if isinstance(datatype, DecimalType):
        return f"NUMBER({datatype.precision},{datatype.scale})"
    if isinstance(datatype, _IntegralType):
        return "NUMBER"
    if isinstance(datatype, TimestampType):
        return "TIMESTAMP_TZ" if is_zoned(datatype) else "TIMESTAMP_NTZ"
    name = type(datatype).__name__.removesuffix("Type").upper()
    return {"STRING": "VARCHAR", "DOUBLE": "FLOAT", "MAP": "OBJECT"}.get(name, name)


def describe_checks(
    mapped: MappedSource,
    in_range: DataFrame,
    new: DataFrame,
    ingestion: Any,
    future_limit: datetime,
    preview_rows: int = 10,
    examples: int = 3,
) -> dict[str, Any]:
    """Counts, a preview and the ingestion checks over the rows a pull would land (all in the warehouse)."""
    rows = new.select(*RAW_EVENT_COLUMNS)
    checked = with_checks(rows, dict.fromkeys(RAW_EVENT_COLUMNS, StringType()), ingestion, future_limit)
    # a repeated EVENT_ID: ingestion accepts the first record and rejects the others (duplicate_event)
    repeats = (
        rows.filter(F.col("EVENT_ID").is_not_null())
        .group_by("EVENT_ID")
        .agg(F.count(F.lit(1)).alias("N"))
        .filter(F.col("N") > F.lit(1))
    )
    duplicates = int(repeats.agg(F.sum(F.col("N") - F.lit(1))).collect()[0][0] or 0)
    reasons = {
        str(r[0]): int(r[1])
        for r in checked.filter(F.col("_REASON").is_not_null()).group_by("_REASON").count().collect()
    }
    if duplicates:
        reasons["duplicate_event"] = duplicates
    rows_read, rows_new = int(in_range.count()), int(rows.count())
    rejected = sum(reasons.values())
    samples: dict[str, list[dict[str, Any]]] = {}
    for reason in reasons:
        if reason == "duplicate_event":
            frame = rows.join(
                repeats.select(F.col("EVENT_ID").alias("R_ID")), F.col("EVENT_ID") == F.col("R_ID")
            )
            frame = frame.select(*RAW_EVENT_COLUMNS)
        else:
            frame = checked.filter(F.col("_REASON") == F.lit(reason)).select(*RAW_EVENT_COLUMNS)
        samples[reason] = [r.as_dict() for r in frame.limit(examples).collect()] if examples else []
    notes = []
    for table, repeated in mapped.lookups:
        n = int(repeated.count())
        if n:
            notes.append(f"lookup table {table}: {n} key(s) appear more than once; the lowest value is used")
    if mapped.unread_rows is not None:
        n = int(mapped.unread_rows.count())
        if n:
            notes.append(f"{n} source row(s) have no {mapped.source.incremental_by} value and are never read")
    if mapped.source.flatten is not None:
        notes.append(
            f"one event per element of {mapped.source.flatten.text}; a row whose array is empty or missing gives none"
        )
    missing = [c for c in RAW_EVENT_COLUMNS if c not in mapped.source.columns]
    if missing:
        notes.append(f"not mapped (left empty): {', '.join(missing)}")
    rate = rejected / rows_new if rows_new else 0.0
    return {
        "columns": [{"name": n, "type": _type_name(t)} for n, t in mapped.source_columns.items()],
        "rows_read": rows_read,
        "rows_new": rows_new,
        "would_accept": rows_new - rejected,
        "would_reject": rejected,
        "rejected_by_reason": dict(sorted(reasons.items(), key=lambda kv: -kv[1])),
        "rejected_examples": samples,
        "rejection_rate": rate,
        "max_rejection_rate": float(ingestion.max_rejection_rate),
        "would_stop": rate > float(ingestion.max_rejection_rate),
        "preview": [r.as_dict() for r in rows.limit(preview_rows).collect()],
        "notes": notes,
    }
