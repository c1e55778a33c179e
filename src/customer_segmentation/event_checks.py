"""The checks a raw event must pass (one floor below the pipelines): ingestion applies them, and the
dry run of a declared source (``check_source``) shows with them what ingestion would reject.

Also the timestamp helpers both need: text that does not depend on session formats, zoned values
as UTC wall-clock time.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F
from snowflake.snowpark.types import DataType, DateType, TimestampTimeZone, TimestampType

#: Explicit timestamp format for text that is hashed or compared: CAST(ts AS STRING) follows the
#: session's TIMESTAMP_*_OUTPUT_FORMAT, which accounts and users can change
#: (https://docs.snowflake.com/en/sql-reference/functions/to_char: TO_VARCHAR(ts, format)).
TIMESTAMP_TEXT_FORMAT = "YYYY-MM-DD HH24:MI:SS.FF9"


def blank(column: Any) -> Any:
    """NULL, empty or only spaces."""
    return F.coalesce(F.trim(column.cast("string")), F.lit("")) == F.lit("")


def is_zoned(datatype: DataType) -> bool:
    """TIMESTAMP_TZ or TIMESTAMP_LTZ (the embedded warehouse reports LTZ as TZ)."""
    return isinstance(datatype, TimestampType) and datatype.tz in (
        TimestampTimeZone.TZ,
        TimestampTimeZone.LTZ,
    )


def as_utc_ntz(column: Any) -> Any:
    """A TIMESTAMP_TZ/LTZ value as the UTC wall-clock TIMESTAMP_NTZ (no text on the way)."""
    return F.call_builtin("convert_timezone", F.lit("UTC"), column).cast("timestamp_ntz")


def timestamp_text(column: Any) -> Any:
    """A TIMESTAMP_NTZ as text that does not depend on session formats.

    ``YYYY-MM-DD HH24:MI:SS`` for whole seconds, else ``...SS.FF9`` without the trailing zeros:
    exactly the text the embedded warehouse's plain cast produced before this change
    ('2026-01-02 03:04:05', '2026-01-02 03:04:05.1'), so RECORD_IDs of already-ingested rows
    stay the same, while nanoseconds are kept on Snowflake. The explicit CAST inside TO_VARCHAR is
    a no-op on Snowflake; the embedded warehouse needs it to keep the format (without a known
    type it silently drops the format argument).
    """
    typed = column.cast("timestamp_ntz")
    whole = F.call_builtin("to_varchar", typed, F.lit(TIMESTAMP_TEXT_FORMAT.removesuffix(".FF9")))
    fraction = F.rtrim(F.call_builtin("to_varchar", typed, F.lit(TIMESTAMP_TEXT_FORMAT)), F.lit("0"))
    return F.iff(F.date_trunc("second", typed) == typed, whole, fraction)


def parse_timestamp(column: Any, formats: list[str], datatype: DataType | None = None) -> Any:
    """EVENT_TS as TIMESTAMP_NTZ: typed columns converted directly, text parsed with ``formats``.

    Going through text would render a typed value with the session's output format first, which
    then may not match any of ``formats``; a zoned value becomes its UTC wall-clock time.
    """
    if isinstance(datatype, TimestampType):
        return as_utc_ntz(column) if is_zoned(datatype) else column.cast("timestamp_ntz")
    if isinstance(datatype, DateType):
        return column.cast("timestamp_ntz")
    trimmed = F.trim(column.cast("string"))
    return F.coalesce(*[F.call_builtin("try_to_timestamp_ntz", trimmed, F.lit(fmt)) for fmt in formats])


def with_checks(
    frame: DataFrame, types: dict[str, DataType], params: Any, future_limit: datetime
) -> DataFrame:
    """Add _TYPE, _TS, _AMOUNT, _QTY (typed values) and _REASON (the first failed check, else NULL).

    ``params`` is the validated ``IngestionParams`` (event types, timestamp formats). The
    duplicate check needs the whole batch and the accepted events: ingestion does it afterwards.
    """
    purchase_types = [t.upper() for t in params.purchase_event_types]
    known_types = purchase_types + [t.upper() for t in params.other_event_types]
    event_type = F.upper(F.trim(F.col("EVENT_TYPE")))
    is_purchase = event_type.isin(purchase_types)
    ts = parse_timestamp(F.col("EVENT_TS"), params.timestamp_formats, types.get("EVENT_TS"))
    amount = F.call_builtin("try_to_decimal", F.trim(F.col("AMOUNT").cast("string")), F.lit(12), F.lit(2))
    quantity = F.call_builtin("try_to_number", F.trim(F.col("QUANTITY").cast("string")))
    frame = frame.with_columns(["_TYPE", "_TS", "_AMOUNT", "_QTY"], [event_type, ts, amount, quantity])
    reason = (
        F.when(blank(F.col("EVENT_ID")), F.lit("missing_event_id"))
        .when(~F.col("_TYPE").isin(known_types) | F.col("_TYPE").is_null(), F.lit("unknown_event_type"))
        .when(blank(F.col("CUSTOMER_ID")), F.lit("missing_customer"))
        .when(F.col("_TS").is_null(), F.lit("bad_timestamp"))
        .when(
            F.col("_TS") > F.lit(future_limit.isoformat(sep=" ")).cast("timestamp_ntz"),
            F.lit("future_timestamp"),
        )
        .when(is_purchase & blank(F.col("ORDER_ID")), F.lit("missing_order_id"))
        .when(is_purchase & F.col("_AMOUNT").is_null(), F.lit("bad_amount"))
        .when(~blank(F.col("AMOUNT")) & F.col("_AMOUNT").is_null(), F.lit("bad_amount"))
        .when(F.col("_AMOUNT") < F.lit(0), F.lit("negative_amount"))
        .when(
            ~blank(F.col("QUANTITY")) & (F.col("_QTY").is_null() | (F.col("_QTY") <= F.lit(0))),
            F.lit("bad_quantity"),
        )
    )
    return frame.with_column("_REASON", reason)
