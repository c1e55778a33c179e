"""Ingestion nodes: pick the new raw events, type and validate them, keep the bad ones aside.

Every raw row gets a ``RECORD_ID`` (a hash of its content and load stamps, plus an occurrence
number for identical rows) and ends in exactly one of TRANSFORMED_DATA or REJECTED_EVENTS,
both merged on RECORD_ID: re-processing a batch (after a crash, or twice) adds nothing.
After the merges, ``reconcile_ingestion`` checks that every batch record is in exactly one of the
two tables; only then does ``advance_watermark`` record the batch in INGESTION_STATE.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from snowflake.snowpark import DataFrame, Window
from snowflake.snowpark import functions as F
from snowflake.snowpark.types import DataType, DateType, TimestampType

from customer_segmentation.clock import now_utc as _now_utc
from customer_segmentation.datasets import REBUILD_MARKER, ScopedMerge
from customer_segmentation.datasets.sources import SourcePull, SourceReader
from customer_segmentation.demo.clock import DemoClock
from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.errors import MissingColumnsError, SegmentationError
from customer_segmentation.event_checks import as_utc_ntz, is_zoned, timestamp_text, with_checks
from customer_segmentation.pipelines.ingestion.params import IngestionParams
from customer_segmentation.sources.declarations import parse_sources
from customer_segmentation.sources.pull import plan_pulls
from customer_segmentation.warehouse.tables import RAW_EVENT_COLUMNS, RAW_LOAD_COLUMNS

logger = logging.getLogger(__name__)

REJECTION_REASONS = (
    "missing_event_id",
    "unknown_event_type",
    "missing_customer",
    "bad_timestamp",
    "future_timestamp",
    "missing_order_id",
    "bad_amount",
    "negative_amount",
    "bad_quantity",
    "duplicate_event",
)
_EPOCH = "1900-01-01 00:00:00"


class RejectionRateExceededError(SegmentationError, ValueError):
    """A batch rejects more events than ``ingestion.max_rejection_rate`` allows (nothing was written)."""


class ReconciliationError(SegmentationError):
    """After the merges, a batch event is in neither or both of TRANSFORMED_DATA and REJECTED_EVENTS."""


PIPELINE_NAME = "ingestion"


def pull_declared_sources(
    declared_sources: dict[str, Any],
    source_reader: SourceReader,
    params: IngestionParams,
    run_metadata: dict[str, Any],
    demo: DemoDataParams = DemoDataParams(),  # frozen: a shared default is safe
) -> list[SourcePull]:
    """The new rows of every declared source, for ``source_pulls`` to land in RAW_DATA (docs/sources.md).

    Runs before the demo seed, so a warehouse that gets your rows is never seeded, and a demo-only
    RAW_DATA is purged before your first rows land (as a first file load does).
    """
    params = IngestionParams.of(params)
    sources = parse_sources(declared_sources)
    if not sources or not params.pull_sources:
        return []
    pulls = plan_pulls(
        source_reader, sources, str((run_metadata or {}).get("run_id") or ""), demo.derived_tables
    )
    for pull in pulls:
        if pull.file_load is None and not pull.skipped:
            logger.info(
                "Source %s (%s): %s rows to read, %s of them new",
                pull.source.name,
                pull.source.where,
                f"{pull.rows_read:,}",
                f"{pull.rows_new:,}",
            )
    return pulls


def report_source_pulls(source_pulls: list[dict[str, Any]]) -> dict[str, Any]:
    """What each declared source added to RAW_DATA in this run (also the seed's cue that the pulls are done)."""
    return {
        "sources": source_pulls,
        "rows_landed": sum(int(r.get("rows_landed", r.get("rows_added", 0)) or 0) for r in source_pulls),
    }


def _in_flight_floor(load_history: DataFrame | None, as_of: datetime, wait_hours: float) -> datetime | None:
    """The earliest LOADED_AT of a file load that is still running (LOAD_HISTORY status 'loading').

    Rows stamped from there on may still be committing, so the watermark must stay below it.
    A 'loading' row older than ``wait_hours`` is a load that crashed (it stays 'loading' until
    the same file is loaded again): it no longer holds ingestion back, but is reported.
    """
    if (
        load_history is None
        or "STATUS" not in load_history.columns
        or "LOADED_AT" not in load_history.columns
    ):
        return None
    cols = [c for c in ("SOURCE_FILE", "LOADED_AT") if c in load_history.columns]
    rows = load_history.filter(F.col("STATUS") == F.lit("loading")).select(*cols).collect()
    limit = as_of - timedelta(hours=wait_hours)
    waiting = [r["LOADED_AT"] for r in rows if r["LOADED_AT"] is not None and r["LOADED_AT"] >= limit]
    for r in rows:
        if r["LOADED_AT"] is not None and r["LOADED_AT"] < limit:
            logger.warning(
                "LOAD_HISTORY: the load of %s at %s never finished (status 'loading' for over %s h); its rows "
                "are ingested as they are. Load that file again with load_events to complete or replace it.",
                r["SOURCE_FILE"] if "SOURCE_FILE" in cols else "a file",
                r["LOADED_AT"],
                wait_hours,
            )
    return min(waiting) if waiting else None


def select_new_events(
    raw_data: DataFrame,
    ingestion_state: DataFrame,
    params: IngestionParams,
    load_history: DataFrame | None = None,
    demo_clock: DemoClock | None = None,
) -> tuple[DataFrame, dict[str, Any]]:
    """Raw events loaded after the last successful run's watermark (all of them on full refresh).

    Never past a file load that is still running (see ``_in_flight_floor``): on Snowflake a load
    can commit its rows after this run has read RAW_DATA, and a watermark above its stamp would
    skip them for good. "Now" (``as_of``: future timestamps, the rows' stamps) is
    ``ingestion.as_of`` when set, else the demo clock while RAW_DATA holds only the demo
    (demo/clock.py), else the wall clock (UTC).
    """
    params = IngestionParams.of(params)  # Kedro passes the validated model; tests may pass a mapping
    missing = [c for c in RAW_EVENT_COLUMNS if c not in raw_data.columns]
    if missing:
        raise MissingColumnsError(
            f"RAW_DATA lacks required column(s) {', '.join(missing)}; it has {', '.join(raw_data.columns)}. "
            "See 'RAW_DATA contract' in the README."
        )
    frame = raw_data
    for column, sql_type in RAW_LOAD_COLUMNS.items():
        if column not in frame.columns:
            frame = frame.with_column(column, F.lit(None).cast(sql_type))
    frame = frame.select(*RAW_EVENT_COLUMNS, *RAW_LOAD_COLUMNS)

    full_refresh = params.full_refresh
    watermark = None
    if not full_refresh:
        rows = (
            ingestion_state.filter(F.col("PIPELINE") == F.lit(PIPELINE_NAME))
            .agg(F.max("WATERMARK").alias("W"))
            .collect()
        )
        watermark = rows[0][0] if rows else None
    clock = demo_clock.today if demo_clock is not None else None
    as_of = (params.as_of or clock or _now_utc()).isoformat(sep=" ")
    if params.as_of is None and clock is not None:
        logger.info(
            "Demo clock: now is %s in the demo world (RAW_DATA holds only the demo); "
            "--params=ingestion.as_of=... overrides it",
            as_of,
        )
    floor = _in_flight_floor(load_history, datetime.fromisoformat(as_of), params.load_wait_hours)
    settled = (
        frame
        if floor is None
        else frame.filter(F.col("LOADED_AT").is_null() | (F.col("LOADED_AT") < F.lit(floor)))
    )
    high_rows = settled.agg(F.max("LOADED_AT").alias("H")).collect()
    high = high_rows[0][0] if high_rows else None

    batch = settled
    if watermark is not None:
        batch = batch.filter(F.col("LOADED_AT").is_null() | (F.col("LOADED_AT") > F.lit(watermark)))
    if high is not None:
        batch = batch.filter(F.col("LOADED_AT").is_null() | (F.col("LOADED_AT") <= F.lit(high)))
    if floor is not None:
        logger.info(
            "Ingestion waits for a file load still running (LOADED_AT %s): its rows come next run", floor
        )
    info = {
        "full_refresh": full_refresh,
        "watermark_from": str(watermark) if watermark is not None else None,
        "watermark_to": str(high)
        if high is not None
        else (str(watermark) if watermark is not None else None),
        "as_of": str(as_of),
        "waiting_for_load_at": str(floor) if floor is not None else None,
    }
    logger.info(
        "Ingestion batch: events loaded after %s up to %s%s",
        info["watermark_from"] or "the beginning",
        info["watermark_to"],
        " (full refresh)" if full_refresh else "",
    )
    return batch, info


def _column_types(frame: DataFrame) -> dict[str, DataType]:
    return {field.name.strip('"').upper(): field.datatype for field in frame.schema.fields}


def _raw_text(name: str, datatype: DataType | None) -> Any:
    """Text of one raw column (hashed into RECORD_ID, kept in REJECTED_EVENTS), whatever the session's formats."""
    column = F.col(name)
    if isinstance(datatype, TimestampType):
        if is_zoned(datatype):
            # the old plain cast rendered a zoned value in UTC with a '+00' suffix: kept as is
            return F.concat(timestamp_text(as_utc_ntz(column)), F.lit("+00"))
        return timestamp_text(column)
    if isinstance(datatype, DateType):
        return F.call_builtin("to_varchar", column.cast("date"), F.lit("YYYY-MM-DD"))
    return column.cast("string")


def _row_hash(types: dict[str, DataType]) -> Any:
    """MD5 of the text of every raw column and load stamp: equal for exact copies of a landed row."""
    parts = [
        F.coalesce(_raw_text(c, types.get(c)), F.lit("\\N")) for c in (*RAW_EVENT_COLUMNS, *RAW_LOAD_COLUMNS)
    ]
    # MD5 (an identity, not a security control): ~30% cheaper than SHA-256 over every raw column
    return F.md5(F.concat_ws(F.lit("|"), *parts))


def _with_row_hash(frame: DataFrame, types: dict[str, DataType] | None = None) -> DataFrame:
    """Add ROW_HASH (see ``_row_hash``)."""
    return frame.with_column("ROW_HASH", _row_hash(_column_types(frame) if types is None else types))


#: Up to this many rows, ``_repeated`` groups the text values in one pass; above, a 64-bit hash first.
TEXT_GROUP_MAX_ROWS = 20_000_000


def _repeated(frame: DataFrame, key: str, rows: int | None = None) -> DataFrame:
    """The non-NULL values of ``key`` that occur in more than one row of ``frame`` (one column, ``key``).

    Hash aggregates over one column (GROUP BY, then a filter on the count, which is what HAVING
    COUNT(*) > 1 does): no sort and no other column is materialised, unlike a window over the
    whole frame (https://docs.snowflake.com/en/sql-reference/constructs/group-by). ``rows`` (the
    frame's row count, when known) picks how: up to :data:`TEXT_GROUP_MAX_ROWS`, one GROUP BY of
    the text; above it or when unknown, first a GROUP BY of a 64-bit HASH of the value, then one of
    the value itself for the rows whose hash repeats. Grouping 100M distinct text values ran out of
    the embedded warehouse's 640MB cap (the 100M benchmark, 2026-12-07), 8-byte keys are grouped
    within it (19 s); at 10M rows the one text pass takes ~half the time of the two (1.3 against
    2.3 s). Both are exact: every repeated value has a repeated hash, and a hash collision only
    admits values that the second GROUP BY then counts.
    The NULL group is left out: ``x IN (subquery)`` is NULL, not false, for every x that matches
    nothing once the subquery holds a NULL (https://docs.snowflake.com/en/sql-reference/functions/in).
    """
    present = frame.filter(F.col(key).is_not_null())
    candidates = present
    if rows is None or rows > TEXT_GROUP_MAX_ROWS:
        repeated_hashes = (
            present.group_by(F.hash(F.col(key)).alias("_H"))
            .agg(F.count(F.lit(1)).alias("_N"))
            .filter(F.col("_N") > F.lit(1))
            .select("_H")
        )
        candidates = present.filter(F.hash(F.col(key)).isin(repeated_hashes))
    counts = candidates.group_by(key).agg(F.count(F.lit(1)).alias("_N"))
    return counts.filter(F.col("_N") > F.lit(1)).select(key)


def _occurrence_id(numbered: bool) -> Any:
    """RECORD_ID = ROW_HASH-occurrence; the occurrence is 1 unless the row has exact copies.

    Copies are identical in every column, so which copy gets which number does not matter: the
    set of RECORD_IDs is the same as a ROW_NUMBER() over every row of the batch would give.
    """
    if not numbered:
        return F.concat(F.col("ROW_HASH"), F.lit("-1"))
    occurrence = F.row_number().over(Window.partition_by("ROW_HASH").order_by("ROW_HASH"))
    return F.concat(F.col("ROW_HASH"), F.lit("-"), occurrence.cast("string"))


#: Raw columns whose text only REJECTED_EVENTS needs: an accepted row is written from their typed
#: (CLEAN_*) values. The typed batch keeps their text only where the row may be rejected.
_TYPED_RAW_COLUMNS = ("EVENT_ID", "EVENT_TYPE", "EVENT_TS", "QUANTITY", "AMOUNT")


def find_repeated_event_ids(batch: DataFrame) -> DataFrame:
    """The EVENT_IDs (trimmed, as CLEAN_EVENT_ID) that occur in more than one row of the batch.

    Hash aggregates over the raw batch (see ``_repeated``; one COUNT of the batch picks how), before
    the batch is typed: the typed batch keeps the raw text of these rows (they may be duplicates),
    and ``number_repeated_records`` numbers them. Usually a few rows per thousand.
    """
    ids = batch.select(F.trim(F.col("EVENT_ID")).alias("CLEAN_EVENT_ID"))
    return _repeated(ids, "CLEAN_EVENT_ID", rows=batch.count())


def classify_events(
    batch: DataFrame,
    existing_events: DataFrame,
    batch_info: dict[str, Any],
    params: IngestionParams,
    repeated_event_ids: DataFrame | None = None,
) -> DataFrame:
    """Type and validate each raw event, without the duplicate check (``resolve_duplicates`` does it).

    CHECK_REASON is NULL for an event that passes every check but the duplicate one (see
    ``number_repeated_records`` and ``resolve_duplicates``); ROW_HASH is
    RECORD_ID's hash; PREV_RECORD_ID is the accepted record of the same EVENT_ID in
    TRANSFORMED_DATA, if any. No window over the batch: materialising this one pass and numbering
    only the few rows that need it afterwards keeps a 10M-event batch out of a full sort.

    With ``repeated_event_ids`` (``find_repeated_event_ids``), the raw text of EVENT_ID,
    EVENT_TYPE, EVENT_TS, QUANTITY and AMOUNT is kept only for a row that can be rejected: one
    that fails a check, whose EVENT_ID was accepted before (PREV_RECORD_ID) or occurs again in the
    batch. Every other row is accepted and written from its CLEAN_* values, so its text would
    never be read: NULL there makes the typed batch much cheaper to write (at 10M events its
    CTAS took 15.3-16.4 s with that text and 11.7-12.3 s without, in DuckDB alone). ROW_HASH
    (RECORD_ID) is computed from the raw text before, so it is the same either way.
    """
    params = IngestionParams.of(params)
    future_limit = datetime.fromisoformat(batch_info["as_of"]) + timedelta(
        hours=params.future_tolerance_hours
    )
    if batch_info.get("full_refresh"):
        # a rebuild replaces TRANSFORMED_DATA: what it held before must not make an event a duplicate
        existing_events = existing_events.filter(F.lit(False))

    types = _column_types(batch)  # one DESCRIBE: typed raw columns are converted without text
    frame = _with_row_hash(batch, types)
    frame = with_checks(frame, types, params, future_limit)

    # the accepted record of the same EVENT_ID from an earlier batch, if any (used by resolve_duplicates)
    previous = existing_events.select(
        F.col("EVENT_ID").alias("_PREV_EVENT_ID"), F.col("RECORD_ID").alias("PREV_RECORD_ID")
    )
    # unqualified names (unique on each side): frame["EVENT_ID"] would cost a DESCRIBE of the checks' plan
    frame = frame.join(previous, F.trim(F.col("EVENT_ID")) == F.col("_PREV_EVENT_ID"), how="left")
    raw = {c: _raw_text(c, types.get(c)) for c in RAW_EVENT_COLUMNS}
    if repeated_event_ids is not None:
        # one left join on the (distinct) repeated ids, not an IN per column: the mark is reused
        repeats = repeated_event_ids.select(F.col("CLEAN_EVENT_ID").alias("_REPEATED_ID"))
        frame = frame.join(repeats, F.trim(F.col("EVENT_ID")) == F.col("_REPEATED_ID"), how="left")
        # a NULL EVENT_ID fails a check (missing_event_id): such a row keeps its text too
        rejectable = (
            F.col("_REASON").is_not_null()
            | F.col("PREV_RECORD_ID").is_not_null()
            | F.col("_REPEATED_ID").is_not_null()
        )
        for c in _TYPED_RAW_COLUMNS:
            raw[c] = F.iff(rejectable, raw[c], F.lit(None).cast("string"))
    return frame.select(
        "ROW_HASH",
        F.col("_REASON").alias("CHECK_REASON"),
        "PREV_RECORD_ID",
        *[raw[c].alias(c) for c in RAW_EVENT_COLUMNS],
        F.trim(F.col("EVENT_ID")).alias("CLEAN_EVENT_ID"),
        F.col("_TYPE").alias("CLEAN_EVENT_TYPE"),
        F.col("_TS").alias("CLEAN_EVENT_TS"),
        F.col("_AMOUNT").alias("CLEAN_AMOUNT"),
        F.col("_QTY").cast("int").alias("CLEAN_QUANTITY"),
        *RAW_LOAD_COLUMNS,
    )


#: Columns of the classified batch (``resolve_duplicates``) after RECORD_ID and REJECT_REASON.
_CLASSIFIED_COLUMNS = (
    *RAW_EVENT_COLUMNS,
    "CLEAN_EVENT_ID",
    "CLEAN_EVENT_TYPE",
    "CLEAN_EVENT_TS",
    "CLEAN_AMOUNT",
    "CLEAN_QUANTITY",
    *RAW_LOAD_COLUMNS,
)


def _with_reject_reason(frame: DataFrame, repeated_in_batch: bool, keep_hash: bool = False) -> DataFrame:
    """The final REJECT_REASON: CHECK_REASON, or duplicate_event for a valid event whose EVENT_ID was seen.

    Among otherwise valid events, an EVENT_ID already accepted by an earlier batch keeps its
    accepted record (re-processing it is a no-op) and every other record of it is a duplicate;
    otherwise the first load of the EVENT_ID wins (LOADED_AT, then SOURCE_FILE, SOURCE_ROW,
    RECORD_ID). ``repeated_in_batch`` says whether ``frame`` holds the EVENT_IDs seen more than once
    in the batch (their every valid row, so the window sees whole partitions); for the other rows
    the ordering cannot make a duplicate and no window is computed.
    """
    valid = F.col("CHECK_REASON").is_null()
    if repeated_in_batch:
        order = Window.partition_by(F.col("CLEAN_EVENT_ID"), valid).order_by(
            F.col("LOADED_AT").asc_nulls_last(), F.col("SOURCE_FILE"), F.col("SOURCE_ROW"), F.col("RECORD_ID")
        )
        later = F.row_number().over(order) > F.lit(1)
    else:
        later = F.lit(False)
    duplicate = valid & F.when(
        F.col("PREV_RECORD_ID").is_not_null(), F.col("PREV_RECORD_ID") != F.col("RECORD_ID")
    ).otherwise(later)
    return frame.select(
        "RECORD_ID",
        F.when(duplicate, F.lit("duplicate_event")).otherwise(F.col("CHECK_REASON")).alias("REJECT_REASON"),
        *_CLASSIFIED_COLUMNS,
        *(["ROW_HASH"] if keep_hash else []),
    )


def number_repeated_records(typed_batch: DataFrame, repeated_event_ids: DataFrame | None = None) -> DataFrame:
    """The few rows that need a ROW_NUMBER, with RECORD_ID and final REJECT_REASON (and ROW_HASH).

    They are the rows whose EVENT_ID occurs more than once in the batch (or is missing), found
    by one GROUP BY ... HAVING COUNT(*) > 1; the windows run over them only. That set holds whole
    window partitions: exact copies share their EVENT_ID (a ROW_HASH partition lies inside one
    EVENT_ID), and the duplicate numbering is partitioned by EVENT_ID. So every row keeps the
    number a window over the whole batch would give it, and every other row has occurrence 1
    and no in-batch duplicate; ``resolve_duplicates`` tells the two sets apart by ROW_HASH.
    ``repeated_event_ids``: that GROUP BY's result, when ``find_repeated_event_ids`` made it already.
    """
    repeated_ids = (
        repeated_event_ids if repeated_event_ids is not None else _repeated(typed_batch, "CLEAN_EVENT_ID")
    )
    # NULL never matches IN: rows without an EVENT_ID (rejected anyway) may still be exact copies
    rare = typed_batch.filter(F.col("CLEAN_EVENT_ID").is_null() | F.col("CLEAN_EVENT_ID").isin(repeated_ids))
    return _with_reject_reason(rare.with_column("RECORD_ID", _occurrence_id(True)), True, keep_hash=True)


def resolve_duplicates(typed_batch: DataFrame, repeated_records: DataFrame) -> DataFrame:
    """RECORD_ID and the final REJECT_REASON (duplicate_event included) of every batch row; NULL if accepted.

    ``repeated_records`` as numbered, every other row with occurrence 1 and no window: the same
    RECORD_IDs and reasons as windows over the whole batch, without sorting it and without
    writing the batch a second time (this frame stays a query over the two scratch tables).
    ROW_HASH is an MD5, never NULL, so NOT IN keeps every other row. Plain Snowflake SQL:
    ``x IN (subquery)`` (https://docs.snowflake.com/en/sql-reference/operators-subquery) and
    ``(query) UNION ALL (query)`` (https://docs.snowflake.com/en/sql-reference/operators-query).
    """
    common = typed_batch.filter(~F.col("ROW_HASH").isin(repeated_records.select("ROW_HASH")))
    common = _with_reject_reason(common.with_column("RECORD_ID", _occurrence_id(False)), False)
    return common.union_all(repeated_records.drop("ROW_HASH"))


def split_events(
    classified: DataFrame, batch_info: dict[str, Any], run_metadata: dict[str, Any], params: IngestionParams
) -> tuple[Any, Any, dict[str, Any]]:
    """Accepted rows for TRANSFORMED_DATA, rejected rows (with reason) for REJECTED_EVENTS, counts.

    Fails, before writing anything, when the share of rejected events exceeds
    ``max_rejection_rate``.
    """
    # one scan for the counts by reason and the batch's RECORD_ID digest (reconcile_ingestion's
    # left-hand side, so that it does not read the whole batch again)
    rows = (
        classified.group_by("REJECT_REASON")
        .agg(F.count(F.lit(1)).alias("N"), F.sum(_hashed_id(F.col("RECORD_ID"))).alias("H"))
        .collect()
    )
    counts = {(r[0] if r[0] is not None else "accepted"): int(r[1]) for r in rows}
    total = sum(counts.values())
    digest = (total, sum(int(r[2] or 0) for r in rows))
    accepted = counts.pop("accepted", 0)
    rejected = sum(counts.values())
    rate = rejected / total if total else 0.0
    report = {
        **batch_info,
        "run_id": run_metadata.get("run_id"),
        "raw": total,
        "accepted": accepted,
        "rejected": rejected,
        "rejected_by_reason": dict(sorted(counts.items())),
        "rejection_rate": round(rate, 6),
        BATCH_DIGEST: digest,
    }
    logger.info(
        "Ingestion reconciliation: raw %s = accepted %s + rejected %s %s",
        total,
        accepted,
        rejected,
        report["rejected_by_reason"],
    )
    max_rate = IngestionParams.of(params).max_rejection_rate
    if rate > max_rate:
        raise RejectionRateExceededError(
            f"{rejected} of {total} raw events ({rate:.2%}) were rejected, above the allowed "
            f"{max_rate:.2%} (parameter ingestion.max_rejection_rate). Nothing was written. Reasons: "
            f"{report['rejected_by_reason']}. Fix the source data, or raise the threshold with "
            "--params=ingestion.max_rejection_rate=<rate> if this is expected."
        )

    stamp = F.lit(batch_info["as_of"]).cast("timestamp_ntz")
    run_id = F.lit(str(run_metadata.get("run_id") or ""))
    good = classified.filter(F.col("REJECT_REASON").is_null()).select(
        "RECORD_ID",
        F.col("CLEAN_EVENT_ID").alias("EVENT_ID"),
        F.col("CLEAN_EVENT_TYPE").alias("EVENT_TYPE"),
        F.col("CLEAN_EVENT_TS").alias("EVENT_TS"),
        F.trim(F.col("CUSTOMER_ID")).alias("CUSTOMER_ID"),
        F.nullif(F.trim(F.col("ORDER_ID")), F.lit("")).alias("ORDER_ID"),
        F.nullif(F.trim(F.col("PRODUCT_ID")), F.lit("")).alias("PRODUCT_ID"),
        F.nullif(F.trim(F.col("CATEGORY")), F.lit("")).alias("CATEGORY"),
        F.col("CLEAN_QUANTITY").alias("QUANTITY"),
        F.col("CLEAN_AMOUNT").alias("AMOUNT"),
        F.coalesce(F.nullif(F.lower(F.trim(F.col("CHANNEL"))), F.lit("")), F.lit("unknown")).alias("CHANNEL"),
        *RAW_LOAD_COLUMNS,
        stamp.alias("INGESTED_AT"),
        run_id.alias("INGESTION_RUN_ID"),
    )
    bad = classified.filter(F.col("REJECT_REASON").is_not_null()).select(
        "RECORD_ID",
        "REJECT_REASON",
        *RAW_EVENT_COLUMNS,
        *RAW_LOAD_COLUMNS,
        stamp.alias("REJECTED_AT"),
        run_id.alias("INGESTION_RUN_ID"),
    )
    if batch_info.get("full_refresh"):
        # a complete rebuild: the marker column makes each merge table replace its content (catalog rebuild_marker)
        return (
            good.with_column(REBUILD_MARKER, F.lit(True)),
            bad.with_column(REBUILD_MARKER, F.lit(True)),
            report,
        )
    # A RECORD_ID hashes its LOADED_AT, so a batch record can only already be in a table among the
    # rows loaded in the batch's range (or with no LOADED_AT): each merge compares with those only.
    low, high = _batch_range(batch_info)
    return (
        ScopedMerge(good, "LOADED_AT", after=low, up_to=high),
        ScopedMerge(bad, "LOADED_AT", after=low, up_to=high),
        report,
    )


def _batch_range(batch_info: dict[str, Any]) -> tuple[str | None, str | None]:
    """The batch's LOADED_AT range (after, up_to], as select_new_events picked it (None: open)."""
    low, high = batch_info.get("watermark_from"), batch_info.get("watermark_to")
    return (None if batch_info.get("full_refresh") else low), high


def _in_batch_range(table: DataFrame, batch_info: dict[str, Any]) -> DataFrame:
    """Rows of ``table`` whose LOADED_AT is in the batch's range (or NULL), as select_new_events picked them."""
    if "LOADED_AT" not in table.columns:
        return table
    loaded = F.col("LOADED_AT")
    low, high = _batch_range(batch_info)
    condition = None
    if low is not None:
        condition = loaded > F.lit(low).cast("timestamp_ntz")
    if high is not None:
        upper = loaded <= F.lit(high).cast("timestamp_ntz")
        condition = upper if condition is None else condition & upper
    return table if condition is None else table.filter(loaded.is_null() | condition)


_HASH_MODULUS = 2**62
#: Key of split_events' counts holding the batch's (rows, hash sum) of RECORD_IDs (``_id_digest``).
BATCH_DIGEST = "batch_digest"


def _id_digest(frame: DataFrame, column: str) -> tuple[int, int]:
    """(rows, sum of HASH(column)) of ``frame``: equal for two equal multisets of ids, in any order.

    One scan, no join and no sort. HASH is Snowflake's 64-bit hash
    (https://docs.snowflake.com/en/sql-reference/functions/hash); the sum is taken as NUMBER(38,0),
    exact for up to ~10^19 rows (an explicit cast: the embedded warehouse otherwise sums in DOUBLE).
    """
    row = frame.agg(F.count(F.lit(1)).alias("N"), F.sum(_hashed_id(F.col(column))).alias("H")).collect()[0]
    return int(row[0] or 0), int(row[1] or 0)


def _hashed_id(column: Any) -> Any:
    """HASH(column) modulo 2^62 as NUMBER(38,0): the term ``_id_digest`` sums.

    Taken modulo 2^62 so that it fits a signed 64-bit integer on both engines (the embedded
    warehouse's HASH is unsigned); a stranger record still changes the sum with odds 1 - 2^-62.
    """
    return (F.hash(column) % F.lit(_HASH_MODULUS)).cast("number(38,0)")


def _batch_check_by_join(batch: DataFrame, accepted: DataFrame, rejected: DataFrame) -> dict[str, int]:
    """Where each batch RECORD_ID is: in TRANSFORMED_DATA only, REJECTED_EVENTS only, both or neither."""
    joined = batch.join(accepted, batch["B_ID"] == accepted["T_ID"], how="left").join(
        rejected, F.col("B_ID") == rejected["R_ID"], how="left"
    )
    in_t, in_r = F.col("T_ID").is_not_null(), F.col("R_ID").is_not_null()
    row = joined.agg(
        F.count(F.lit(1)).alias("N"),
        F.sum(F.iff(in_t & ~in_r, F.lit(1), F.lit(0))).alias("ONLY_T"),
        F.sum(F.iff(in_r & ~in_t, F.lit(1), F.lit(0))).alias("ONLY_R"),
        F.sum(F.iff(in_t & in_r, F.lit(1), F.lit(0))).alias("BOTH"),
        F.sum(F.iff(~in_t & ~in_r, F.lit(1), F.lit(0))).alias("NEITHER"),
    ).collect()[0]
    return {
        "events": int(row[0] or 0),
        "in_transformed_data": int(row[1] or 0),
        "in_rejected_events": int(row[2] or 0),
        "in_both": int(row[3] or 0),
        "in_neither": int(row[4] or 0),
    }


def reconcile_ingestion(
    classified_batch: DataFrame,
    raw_data: DataFrame,
    transformed_data: DataFrame,
    rejected_events: DataFrame,
    batch_counts: dict[str, Any],
) -> dict[str, Any]:
    """Prove, after the merges, that every event of the batch is in exactly one of the two tables.

    Fails (before the watermark moves, so the next run retries the batch) when one is in neither or
    both. Also compares the warehouse totals: raw events up to the watermark = accepted + rejected
    (a warning only: a retention job that prunes RAW_DATA breaks that equality on purpose).

    The proof is first made without a join: the batch's RECORD_IDs and those of the two tables in
    the batch's range must have the same count and the same sum of hashes (``_id_digest``). Then
    the two tables hold exactly the batch's records, each once (a record in both tables, or in
    neither, or a repeated one, changes the count). Only when that fails is each record looked up
    (two joins) to say which records are in neither or both: 54 s of joins at 100M events, against
    three scans (the batch's, made by split_events with its counts by reason, and the two tables').
    """
    batch = classified_batch.select(F.col("RECORD_ID").alias("B_ID"))
    batch_counts = dict(batch_counts)
    # the batch's side, taken by split_events in the scan that counted it by reason (the batch's temporary
    # tables have not changed since); computed here when the counts come without it
    known = batch_counts.pop(BATCH_DIGEST, None)
    # A record's RECORD_ID hashes its LOADED_AT, so a batch record can only match rows loaded in
    # the batch's range: the two tables are read for that range only, not whole (a daily batch
    # is ~1% of them). No DISTINCT: RECORD_ID is the merge key, and a repeated one would make the
    # joined count differ from the batch count, which fails below anyway.
    accepted = _in_batch_range(transformed_data, batch_counts).select(F.col("RECORD_ID").alias("T_ID"))
    rejected = _in_batch_range(rejected_events, batch_counts).select(F.col("RECORD_ID").alias("R_ID"))
    (b_n, b_h), (t_n, t_h), (r_n, r_h) = (
        tuple(known) if known is not None else _id_digest(batch, "B_ID"),
        _id_digest(accepted, "T_ID"),
        _id_digest(rejected, "R_ID"),
    )
    if b_n == t_n + r_n and b_h == t_h + r_h:
        check = {
            "events": b_n,
            "in_transformed_data": t_n,
            "in_rejected_events": r_n,
            "in_both": 0,
            "in_neither": 0,
        }
        method = "count and checksum"
    else:  # which records differ (or rows of the range that are not in this batch): look each one up
        check = _batch_check_by_join(batch, accepted, rejected)
        method = "join"
    report = {**batch_counts, "batch_check": check, "batch_check_method": method}
    if check["in_both"] or check["in_neither"] or check["events"] != int(batch_counts["raw"]):
        raise ReconciliationError(
            f"Ingestion reconciliation failed for run {batch_counts.get('run_id')}: of {check['events']} batch "
            f"events ({batch_counts['raw']} classified), {check['in_neither']} are in neither TRANSFORMED_DATA nor "
            f"REJECTED_EVENTS and {check['in_both']} are in both. The watermark was not moved; rerun the "
            "ingestion, and if this persists rebuild with --params=ingestion.full_refresh=true."
        )

    watermark = batch_counts.get("watermark_to")
    raw_scope = raw_data
    if watermark is not None and "LOADED_AT" in raw_data.columns:
        raw_scope = raw_data.filter(
            F.col("LOADED_AT").is_null() | (F.col("LOADED_AT") <= F.lit(watermark).cast("timestamp_ntz"))
        )
    totals = {
        "raw_events": int(raw_scope.count()),
        "transformed_events": int(transformed_data.count()),
        "rejected_events": int(rejected_events.count()),
    }
    totals["reconciled"] = totals["raw_events"] == totals["transformed_events"] + totals["rejected_events"]
    report["warehouse_totals"] = totals
    log = logger.info if totals["reconciled"] else logger.warning
    log(
        "Warehouse reconciliation: RAW_DATA %s %s TRANSFORMED_DATA %s + REJECTED_EVENTS %s",
        totals["raw_events"],
        "=" if totals["reconciled"] else "!=",
        totals["transformed_events"],
        totals["rejected_events"],
    )
    return report


def advance_watermark(
    transformed_data: DataFrame, rejected_events: DataFrame, ingestion_report: dict[str, Any]
) -> DataFrame:
    """One state row recording the batch just merged; written only after both merges succeeded."""
    session = transformed_data.session
    watermark = ingestion_report.get("watermark_to") or _EPOCH
    return session.sql("SELECT 1 AS ONE").select(
        F.lit(PIPELINE_NAME).alias("PIPELINE"),
        F.lit(watermark).cast("timestamp_ntz").alias("WATERMARK"),
        F.lit(int(ingestion_report["raw"])).alias("RAW_EVENTS"),
        F.lit(int(ingestion_report["accepted"])).alias("ACCEPTED_EVENTS"),
        F.lit(int(ingestion_report["rejected"])).alias("REJECTED_EVENTS"),
        F.lit(str(ingestion_report.get("run_id") or "")).alias("RUN_ID"),
        F.lit(ingestion_report["as_of"]).cast("timestamp_ntz").alias("UPDATED_AT"),
    )
