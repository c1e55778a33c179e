"""Per-customer features computed in the warehouse with Snowpark (no raw events leave it).

Definitions (also in the README):
- orders are ORDER_CREATED events grouped by ORDER_ID; an order with an ORDER_CANCELLED event is
  cancelled; ORDER_RETURNED events refund their AMOUNT;
- RECENCY_DAYS: days from the last order to the reference date;
- FREQUENCY: distinct orders not cancelled; MONETARY: net spend = ordered - cancelled - returned.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, date, datetime, time, timedelta
from functools import partial
from typing import Any

import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F
from snowflake.snowpark.types import DecimalType

from customer_segmentation import value_summary
from customer_segmentation.datasets.customer_aggregates import (
    AggregatesState,
    AggregatesUpdate,
    CustomerAggregates,
)
from customer_segmentation.datasets.monitoring import single_query_sql
from customer_segmentation.demo.clock import DemoClock
from customer_segmentation.errors import MissingTableError
from customer_segmentation.exact import exact_sum
from customer_segmentation.pipelines.rfm_features.params import RfmFeaturesParams
from customer_segmentation.rfm import rfm_segment_column
from customer_segmentation.tiles import Tile, TileKey, add_tiles, ntile_window

logger = logging.getLogger(__name__)

CREATED, CANCELLED, RETURNED = "ORDER_CREATED", "ORDER_CANCELLED", "ORDER_RETURNED"
ORDER_EVENT_TYPES = [CREATED, CANCELLED, RETURNED]
#: Money is summed as NUMBER(18,2), not DOUBLE: exact sums do not depend on the order rows are
#: added in, so an incremental update and a full recompute (or two runs of either) give the same
#: cents even at half-cent roundings. Snowflake: fixed-point NUMBER values are exact, FLOAT ones
#: approximate (https://docs.snowflake.com/sql-reference/data-types-numeric), and a SUM of NUMBER
#: values is a NUMBER (as the SUM data metric function documents: "a NUMBER value for a NUMBER
#: column"). The features are cast to DOUBLE at the end.
MONEY = DecimalType(18, 2)
_ZERO = F.lit(0).cast(MONEY)


def _money_sum(column: Any) -> Any:
    """SUM of money, exact.

    On Snowflake the CASTs only fix the type (amounts are NUMBER(12,2); a customer's totals fit
    NUMBER(18,2), and one that did not would fail, not round). The embedded warehouse wraps the
    argument of a SUM that is not already a CAST in TRY_CAST(... AS DOUBLE) (fakesnow's
    numeric_agg_implicit_cast), which would make the sum inexact again. The SUM itself is a
    NUMBER(38,2) on both; cast back to NUMBER(18,2) it is stored in 8 bytes instead of 16 in the
    embedded warehouse (DuckDB keeps a DECIMAL of more than 18 digits as a 128-bit integer): at
    10M events the daily-spend and aggregate tables are written and read back ~10-15% faster
    (docs/benchmarks.md, session 35). Same values on both.
    """
    if isinstance(column, str):
        column = F.col(column)
    return F.sum(column.cast(MONEY)).cast(MONEY)


def _reference_date(events: DataFrame, params: RfmFeaturesParams) -> date:
    if params.reference_date is not None:
        return params.reference_date
    latest = events.agg(F.max("EVENT_TS").alias("M")).collect()[0][0]
    if latest is None:
        raise ValueError(
            "TRANSFORMED_DATA holds no valid event: run `kedro run --pipelines ingestion` first."
        )
    latest = latest if isinstance(latest, datetime) else datetime.fromisoformat(str(latest))
    return latest.date() + timedelta(days=1)


def _ratio(numerator: Any, denominator: Any, if_zero: Any = 0.0) -> Any:
    """``numerator / denominator`` in DOUBLE, ``if_zero`` when the denominator is 0 or NULL.

    On Snowflake, NUMBER / NUMBER keeps only a few decimals (``1/3`` = 0.333333: result scale
    max(S1, min(S1 + 6, 12)), https://docs.snowflake.com/en/sql-reference/operators-arithmetic)
    and ``x / 0`` raises "Division by zero"; the embedded warehouse gives full precision and
    ``inf``. Casting both sides to DOUBLE and dividing by NULLIF(den, 0) gives the same value on both.
    """
    ratio = numerator.cast("double") / F.nullif(denominator.cast("double"), F.lit(0.0))
    return ratio if if_zero is None else F.coalesce(ratio, F.lit(if_zero))


def _channel_column(channel: str) -> str:
    return "SHARE_" + "".join(ch if ch.isalnum() else "_" for ch in channel.upper())


def _order_rows(events: DataFrame) -> DataFrame:
    """One row per created order (CUSTOMER_ID, ORDER_ID): ORDER_TS, GROSS, CANCELLED_AMT, RETURNED_AMT, IS_CANCELLED, NET."""
    typ, amount = F.col("EVENT_TYPE"), F.coalesce(F.col("AMOUNT").cast(MONEY), _ZERO)
    return (
        events.group_by("CUSTOMER_ID", "ORDER_ID")
        .agg(
            F.min(F.iff(typ == CREATED, F.col("EVENT_TS"), F.lit(None))).alias("ORDER_TS"),
            _money_sum(F.iff(typ == CREATED, amount, _ZERO)).alias("GROSS"),
            _money_sum(F.iff(typ == CANCELLED, amount, _ZERO)).alias("CANCELLED_AMT"),
            _money_sum(F.iff(typ == RETURNED, amount, _ZERO)).alias("RETURNED_AMT"),
            F.max(F.iff(typ == CANCELLED, F.lit(1), F.lit(0))).alias("IS_CANCELLED"),
        )
        .filter(F.col("ORDER_TS").is_not_null())
        .with_column(
            "NET", F.col("GROSS") - F.least(F.col("CANCELLED_AMT"), F.col("GROSS")) - F.col("RETURNED_AMT")
        )
    )


def _spend_column(channel: str) -> str:
    return "SPEND_" + "".join(ch if ch.isalnum() else "_" for ch in channel.upper())


def daily_order_rows(events: DataFrame) -> DataFrame:
    """CUSTOMER_DAILY_SPEND: per customer and order day, the orders created that day and their money.

    An order belongs to the day of its ORDER_TS (its first ORDER_CREATED event); its net spend
    includes its later cancellations and returns. The windows start at midnight, so
    "ORDER_TS >= start" and "ORDER_DAY >= start" select the same orders.
    """
    events = events.filter(F.col("EVENT_TYPE").isin(ORDER_EVENT_TYPES))
    orders = _order_rows(events)
    kept = F.col("IS_CANCELLED") == F.lit(0)
    return orders.group_by("CUSTOMER_ID", F.col("ORDER_TS").cast("date").alias("ORDER_DAY")).agg(
        _money_sum("NET").alias("NET_SPEND"),
        # the net value of the day's orders that are not cancelled: a transaction's spend (value_summary)
        _money_sum(F.iff(kept, F.col("NET"), _ZERO)).alias("KEPT_NET_SPEND"),
        _money_sum("GROSS").alias("GROSS_SPEND"),
        _money_sum("RETURNED_AMT").alias("RETURNED_SPEND"),
        # COUNT ignores a NULL ORDER_ID, as COUNT(DISTINCT) did; an order is one row of one day
        F.count(F.col("ORDER_ID")).alias("ORDERS_PLACED"),
        F.count(F.iff(kept, F.col("ORDER_ID"), F.lit(None))).alias("KEPT_ORDERS"),
        F.sum(F.col("IS_CANCELLED").cast("int")).alias("ORDERS_CANCELLED"),
        F.min("ORDER_TS").alias("FIRST_ORDER_TS"),
        F.max("ORDER_TS").alias("LAST_ORDER_TS"),
    )


def customers_from_daily(daily_rows: DataFrame, events: DataFrame, channels: list[str]) -> DataFrame:
    """CUSTOMER_AGGREGATES: one row per customer with an order, from its order days and its order lines.

    Order counts, spend, returns, cancellations and first/last (kept) order timestamps roll up
    the daily rows; distinct categories and spend per channel come from the ORDER_CREATED lines.
    Nothing depends on the reference date, and a customer's row only on its own events.
    """
    per_customer = daily_rows.group_by("CUSTOMER_ID").agg(
        F.min("FIRST_ORDER_TS").alias("FIRST_ORDER_TS"),
        F.max("LAST_ORDER_TS").alias("LAST_ORDER_TS"),
        F.sum(F.col("KEPT_ORDERS").cast("int")).alias("FREQUENCY"),
        F.sum(F.col("ORDERS_PLACED").cast("int")).alias("ORDERS_PLACED"),
        F.sum(F.col("ORDERS_CANCELLED").cast("int")).alias("ORDERS_CANCELLED"),
        _money_sum("GROSS_SPEND").alias("GROSS_SPEND"),
        _money_sum("NET_SPEND").alias("MONETARY"),
        _money_sum("RETURNED_SPEND").alias("RETURNED_SPEND"),
        *value_summary.rollup_aggregates(),
    )
    # the customer-value rollup (first/last transaction day, transaction days, repeat spend)
    per_customer = value_summary.add_repeat_spend(per_customer, daily_rows)
    typ, amount = F.col("EVENT_TYPE"), F.coalesce(F.col("AMOUNT").cast(MONEY), _ZERO)
    spends = [_spend_column(channel) for channel in channels]
    # per customer and category first, then per customer: the distinct categories are the non-NULL
    # groups (as COUNT(DISTINCT) counts them), and the money is summed exact at both levels. Two
    # GROUP BYs took 0.39 s over 10M events where COUNT(DISTINCT) beside the sums took 0.71-0.91 s.
    per_category = (
        events.filter(typ == CREATED)
        .group_by(F.col("CUSTOMER_ID").alias("_CID"), F.col("CATEGORY").alias("_CATEGORY"))
        .agg(
            _money_sum(amount).alias("_GROSS"),
            *[
                _money_sum(F.iff(F.col("CHANNEL") == F.lit(channel), amount, _ZERO)).alias(spend)
                for channel, spend in zip(channels, spends)
            ],
        )
    )
    per_line = per_category.group_by("_CID").agg(
        F.count("_CATEGORY").alias("DISTINCT_CATEGORIES"),
        _money_sum(F.col("_GROSS")).alias("LINE_GROSS"),
        *[_money_sum(F.col(spend)).alias(spend) for spend in spends],
    )
    return per_customer.join(per_line, F.col("CUSTOMER_ID") == F.col("_CID"), how="left").select(
        *AGGREGATE_COLUMNS[:-2],
        F.coalesce(F.col("DISTINCT_CATEGORIES"), F.lit(0)).alias("DISTINCT_CATEGORIES"),
        F.col("LINE_GROSS"),
        *[F.col(_spend_column(c)) for c in channels],
        *[F.col(c) for c in value_summary.ROLLUP_COLUMNS],
    )


def aggregate_customers(events: DataFrame, channels: list[str]) -> tuple[DataFrame, DataFrame]:
    """CUSTOMER_AGGREGATES and CUSTOMER_DAILY_SPEND rows of ``events``, as two lazy frames."""
    daily = daily_order_rows(events)
    return customers_from_daily(daily, events, channels), daily


#: The reference-date-free columns of CUSTOMER_AGGREGATES (then one SPEND_<CHANNEL> per channel).
AGGREGATE_COLUMNS = (
    "CUSTOMER_ID",
    "FIRST_ORDER_TS",
    "LAST_ORDER_TS",
    "FREQUENCY",
    "ORDERS_PLACED",
    "ORDERS_CANCELLED",
    "GROSS_SPEND",
    "MONETARY",
    "RETURNED_SPEND",
    "DISTINCT_CATEGORIES",
    "LINE_GROSS",
)


def features_from_aggregates(
    aggregates: DataFrame,
    daily_spend: DataFrame,
    ref: date,
    params: RfmFeaturesParams,
    stored: bool = False,
) -> DataFrame:
    """CUSTOMER_FEATURES from the per-customer aggregates: what depends on the reference date, and RFM scores.

    Valid when every aggregated event is before ``ref``; one pass over one row per customer plus
    the order days of the last two trend windows. ``stored``: ``aggregates`` is a table (not a
    query over the events), cheap to read again: the RFM scores are then computed from it without
    sorting all customers (add_rfm_scores).
    """
    ref_lit = F.lit(ref.isoformat()).cast("date")
    channels = _channels(params)
    window = params.trend_window_days
    recent_start = F.lit((ref - timedelta(days=window)).isoformat()).cast("date")
    previous_start = F.lit((ref - timedelta(days=2 * window)).isoformat()).cast("date")
    day, net = F.col("ORDER_DAY"), F.col("NET_SPEND")
    windows = (
        daily_spend.filter(day >= previous_start)
        .group_by(F.col("CUSTOMER_ID").alias("_WID"))
        .agg(
            _money_sum(F.iff(day >= recent_start, net, _ZERO)).alias("_LAST"),
            _money_sum(F.iff(day < recent_start, net, _ZERO)).alias("_PREV"),
        )
    )
    # unqualified names (unique on each side) and no with_columns: each df["X"] or with_columns on
    # the join cost Snowpark a DESCRIBE of it (docs/benchmarks.md, session 34)
    feats = aggregates.join(windows, F.col("CUSTOMER_ID") == F.col("_WID"), how="left")
    last, previous = F.coalesce(F.col("_LAST"), _ZERO), F.coalesce(F.col("_PREV"), _ZERO)
    gross = F.col("LINE_GROSS")
    share_cols = [_ratio(F.col(_spend_column(c)), gross).alias(_channel_column(c)) for c in channels]
    freq = F.col("FREQUENCY")
    recency = F.datediff("day", F.col("LAST_ORDER_TS"), ref_lit)
    monetary = F.round(F.col("MONETARY"), 2).cast("double")
    # the scores' keys, read from the stored aggregates alone (add_rfm_scores)
    score_keys = (
        aggregates.select(
            F.col("CUSTOMER_ID"),
            recency.alias("RECENCY_DAYS"),
            freq.alias("FREQUENCY"),
            monetary.alias("MONETARY"),
        )
        if stored
        else None
    )
    feats = feats.select(
        "CUSTOMER_ID",
        recency.alias("RECENCY_DAYS"),
        freq.alias("FREQUENCY"),
        monetary.alias("MONETARY"),
        F.round(_ratio(F.col("MONETARY"), freq), 2).alias("AVG_ORDER_VALUE"),
        F.datediff("day", F.col("FIRST_ORDER_TS"), ref_lit).alias("TENURE_DAYS"),
        # NULL for customers with fewer than two kept orders (no gap to average); the first and last
        # kept orders' days are the first and last transaction days (value_summary.ROLLUP_COLUMNS)
        _ratio(
            F.datediff("day", F.col("FIRST_TXN_DAY"), F.col("LAST_TXN_DAY")),
            F.iff(freq > F.lit(1), freq - F.lit(1), F.lit(0)),
            if_zero=None,
        ).alias("MEAN_DAYS_BETWEEN_ORDERS"),
        F.col("DISTINCT_CATEGORIES"),
        *share_cols,
        _ratio(F.col("RETURNED_SPEND"), F.col("GROSS_SPEND")).alias("RETURN_RATE"),
        _ratio(F.col("ORDERS_CANCELLED"), F.col("ORDERS_PLACED")).alias("CANCELLATION_RATE"),
        F.round(last, 2).cast("double").alias("SPEND_LAST_90D"),
        F.round(previous, 2).cast("double").alias("SPEND_PREV_90D"),
        _ratio(last - previous, F.abs(last) + F.abs(previous)).alias("SPEND_TREND"),
        F.col("FIRST_ORDER_TS"),
        F.col("LAST_ORDER_TS"),
        ref_lit.alias("REFERENCE_DATE"),
    )
    return add_rfm_scores(feats, score_keys)


def compute_customer_features(transformed_data: DataFrame, params: RfmFeaturesParams) -> DataFrame:
    """One row per customer with at least one order, recomputed from all events before the reference date."""
    params = RfmFeaturesParams.of(params)  # Kedro passes the validated model; tests may pass a mapping
    ref = _reference_date(transformed_data, params)
    ref_ts = F.lit(ref.isoformat()).cast("timestamp_ntz")
    aggregates, daily = aggregate_customers(
        transformed_data.filter(F.col("EVENT_TS") < ref_ts), _channels(params)
    )
    return features_from_aggregates(aggregates, daily, ref, params)


def _channels(params: RfmFeaturesParams) -> list[str]:
    return [str(c).lower() for c in params.channels]


def _ts_lit(value: datetime) -> Any:
    # microseconds, as Python holds them (LOADED_AT stamps written by this project have no more)
    return F.lit(value.strftime("%Y-%m-%d %H:%M:%S.%f")).cast("timestamp_ntz")


def _scan_loads(transformed_data: DataFrame, watermark: datetime | None) -> dict[str, Any]:
    """One aggregate over TRANSFORMED_DATA's load stamps: the rows at or below ``watermark`` and all rows.

    "At or below" includes rows without LOADED_AT. Returns their counts, the smallest and largest
    INGESTION_RUN_ID of each set (a full refresh restamps every row with its own run id), the
    largest LOADED_AT (the next watermark) and the latest EVENT_TS.
    """
    columns = transformed_data.columns
    loaded = F.col("LOADED_AT") if "LOADED_AT" in columns else F.lit(None).cast("timestamp_ntz")
    run = F.col("INGESTION_RUN_ID") if "INGESTION_RUN_ID" in columns else F.lit(None).cast("string")
    old = loaded.is_null() if watermark is None else loaded.is_null() | (loaded <= _ts_lit(watermark))
    row = transformed_data.agg(
        F.coalesce(F.sum(F.iff(old, F.lit(1), F.lit(0))), F.lit(0)).alias("OLD_EVENTS"),
        F.min(F.iff(old, run, F.lit(None))).alias("OLD_MIN_RUN"),
        F.max(F.iff(old, run, F.lit(None))).alias("OLD_MAX_RUN"),
        F.count(F.lit(1)).alias("EVENTS"),
        F.min(run).alias("MIN_RUN"),
        F.max(run).alias("MAX_RUN"),
        F.max(loaded).alias("HIGH"),
        F.max(F.col("EVENT_TS")).alias("MAX_EVENT_TS"),
    ).collect()[0]
    return row.as_dict()


def _customers_of(events: DataFrame, channels: list[str]) -> Callable[[DataFrame], DataFrame]:
    """CUSTOMER_AGGREGATES rows as a function of the daily rows once stored (orders are aggregated once)."""
    return partial(customers_from_daily, events=events, channels=channels)


#: Columns that older versions wrote and this one no longer does (the kept orders' first and last
#: timestamps: only their days were used, which FIRST_TXN_DAY and LAST_TXN_DAY hold).
RETIRED_COLUMNS = ("FIRST_KEPT_TS", "LAST_KEPT_TS")


def _stale_layout(previous: CustomerAggregates | None) -> str | None:
    """Why the stored tables cannot be updated in place (an older version's columns), or None.

    Missing columns would fail an incremental INSERT; retired ones would stay behind, stale for
    the customers the update does not touch: either way the tables are rebuilt once.
    """
    if previous is None or previous.customers is None or previous.daily_spend is None:
        return "the aggregates are missing"
    customers = {c.strip('"').upper() for c in previous.customers.columns}
    daily = {c.strip('"').upper() for c in previous.daily_spend.columns}
    if not (set(value_summary.ROLLUP_COLUMNS) <= customers and "KEPT_NET_SPEND" in daily):
        return "the aggregates predate the customer-value columns (value_summary.ROLLUP_COLUMNS)"
    if (customers | daily) & set(RETIRED_COLUMNS):
        return f"the aggregates hold columns this version no longer writes ({', '.join(RETIRED_COLUMNS)})"
    return None


def _plan_aggregates(
    transformed_data: DataFrame, previous: CustomerAggregates | None, params: RfmFeaturesParams, rebuild: bool
) -> AggregatesUpdate:
    channels = _channels(RfmFeaturesParams.of(params))
    prev = previous.state if previous is not None else None
    scan = _scan_loads(transformed_data, prev.watermark if prev is not None else None)
    high = scan["HIGH"]
    state = AggregatesState(
        watermark=high,
        events=int(scan["EVENTS"]),
        min_run_id=scan["MIN_RUN"],
        max_run_id=scan["MAX_RUN"],
        max_event_ts=scan["MAX_EVENT_TS"],
        channels=",".join(channels),
        updated_at=datetime.now(UTC).replace(tzinfo=None),
    )
    loaded = F.col("LOADED_AT") if "LOADED_AT" in transformed_data.columns else None
    # the rows the state describes: none past the watermark just read
    upto = (
        transformed_data
        if high is None or loaded is None
        else transformed_data.filter(loaded.is_null() | (loaded <= _ts_lit(high)))
    )
    reason = None
    if rebuild:
        reason = "full run"
    elif prev is None:
        reason = "no aggregates yet (first run, or a rebuild that did not finish)"
    elif prev.channels != state.channels:
        reason = f"rfm_features.channels changed ({prev.channels} -> {state.channels})"
    elif (stale := _stale_layout(previous)) is not None:
        reason = stale
    elif high is None:
        reason = "TRANSFORMED_DATA has no LOADED_AT stamps to tell new events from old ones"
    elif (int(scan["OLD_EVENTS"]), scan["OLD_MIN_RUN"], scan["OLD_MAX_RUN"]) != (
        prev.events,
        prev.min_run_id,
        prev.max_run_id,
    ):
        reason = (
            f"TRANSFORMED_DATA's rows up to watermark {prev.watermark} changed ({prev.events:,} aggregated, "
            f"{int(scan['OLD_EVENTS']):,} now): a full refresh, deleted rows or rows without LOADED_AT"
        )
    if reason is not None:
        logger.info("Customer aggregates rebuilt from all events: %s", reason)
        return AggregatesUpdate(
            "rebuild", replace(state, mode="rebuild"), _customers_of(upto, channels), daily_order_rows(upto)
        )
    if state.events == prev.events:
        return AggregatesUpdate("unchanged", prev)
    assert loaded is not None  # high is not None above
    # above the watermark; every stamped row when the aggregated rows had no stamp at all
    new_rows = upto.filter(
        loaded.is_not_null() if prev.watermark is None else loaded > _ts_lit(prev.watermark)
    )
    touched = new_rows.select("CUSTOMER_ID").distinct()
    # every event of those customers (late events of old orders need the orders' earlier events);
    # isin(DataFrame) is "CUSTOMER_ID IN (SELECT ...)": Snowflake supports IN subqueries in WHERE
    # (https://docs.snowflake.com/user-guide/querying-subqueries)
    mine = upto.filter(F.col("CUSTOMER_ID").isin(touched))

    logger.info(
        "Customer aggregates: %s new events since watermark %s; recomputing their customers only",
        f"{state.events - prev.events:,}",
        prev.watermark,
    )
    return AggregatesUpdate(
        "incremental",
        replace(state, mode="incremental"),
        _customers_of(mine, channels),
        daily_order_rows(mine),
        touched,
    )


def rebuild_customer_aggregates(
    transformed_data: DataFrame, customer_aggregates_previous: CustomerAggregates, params: RfmFeaturesParams
) -> AggregatesUpdate:
    """CUSTOMER_AGGREGATES and CUSTOMER_DAILY_SPEND from every event (the full run)."""
    return _plan_aggregates(transformed_data, customer_aggregates_previous, params, rebuild=True)


def update_customer_aggregates(
    transformed_data: DataFrame, customer_aggregates_previous: CustomerAggregates, params: RfmFeaturesParams
) -> AggregatesUpdate:
    """Customer aggregates recomputed for the customers with events loaded after the watermark (daily)."""
    return _plan_aggregates(transformed_data, customer_aggregates_previous, params, rebuild=False)


def customer_features_from_aggregates(
    transformed_data: DataFrame,
    customer_aggregates: CustomerAggregates,
    params: RfmFeaturesParams,
    demo_clock: DemoClock | None = None,
) -> DataFrame:
    """CUSTOMER_FEATURES from the aggregates (all events instead when the reference date is not after the last one).

    The reference date is ``rfm_features.reference_date`` when set, else the demo clock's date while
    RAW_DATA holds only the demo (demo/clock.py: recency counts days before the demo's today), else
    the day after the latest valid event.
    """
    state = customer_aggregates.state
    if state is None or customer_aggregates.customers is None or customer_aggregates.daily_spend is None:
        raise MissingTableError(
            "CUSTOMER_AGGREGATES (or its state row) is missing: run `kedro run --pipelines rfm_features`."
        )
    latest = state.max_event_ts
    if latest is None:
        raise ValueError(
            "TRANSFORMED_DATA holds no valid event: run `kedro run --pipelines ingestion` first."
        )
    params = RfmFeaturesParams.of(params)  # Kedro passes the validated model; tests may pass a mapping
    if params.reference_date is None and demo_clock is not None and demo_clock.reference_date is not None:
        params = params.model_copy(update={"reference_date": demo_clock.reference_date})
        logger.info("Reference date %s: the demo clock's today", params.reference_date)
    ref = params.reference_date or latest.date() + timedelta(days=1)
    if latest >= datetime.combine(ref, time()):
        # the aggregates hold events on or after the reference date, which the features must not see
        logger.info(
            "Reference date %s is not after the latest event (%s): features computed from all events",
            ref,
            latest,
        )
        return compute_customer_features(transformed_data, params)
    return features_from_aggregates(
        customer_aggregates.customers, customer_aggregates.daily_spend, ref, params, stored=True
    )


#: The RFM quintiles: R by recency (most recent = 5), F by order count then spend, M by spend;
#: ties broken by CUSTOMER_ID (tiles.py; the NTILE(5) windows of the fallback are built from them).
RFM_TILES = (
    Tile("R_SCORE", (TileKey("RECENCY_DAYS", descending=True),)),
    Tile("F_SCORE", (TileKey("FREQUENCY"), TileKey("MONETARY", coarse=True))),
    Tile("M_SCORE", (TileKey("MONETARY", coarse=True),)),
)


def add_rfm_scores(features: DataFrame, keys: DataFrame | None = None) -> DataFrame:
    """R, F, M quintile scores (1-5, recent/frequent/high spend = 5) and the RFM segment name, rows by CUSTOMER_ID.

    With ``keys`` (CUSTOMER_ID, RECENCY_DAYS, FREQUENCY, MONETARY of the same customers with the
    same values: a narrow query of the stored aggregates) the scores come from counts per bin of
    the order keys (tiles.py: two small temporary tables first, no sort of all customers, no
    single-partition window on Snowflake; CUSTOMER_FEATURES 1.75 -> 1.36-1.42 s with them at 1M
    customers in the embedded warehouse). Otherwise, or when a plan is not one query, by the three
    NTILE windows over four narrow columns, joined back on CUSTOMER_ID: each window sorts whole
    rows, so over the 25 feature columns they took 3.2-3.9 s of the CUSTOMER_FEATURES CTAS at 1M
    customers, narrow plus the join 2.2-2.5 s (same values, docs/benchmarks.md). The rows are in
    no particular order: the aggregates of doubles downstream are exact (exact.py), so they do not
    depend on it. (An ORDER BY CUSTOMER_ID here, 0.33 s at 1M customers, once kept them equal on
    small tables only: on a table of several row groups DuckDB adds on several threads in an order
    of its own.)
    """
    if keys is not None:
        rows_sql, keys_sql = single_query_sql(features), single_query_sql(keys)
        if rows_sql is not None and keys_sql is not None:
            scored = add_tiles(features.session, rows_sql, keys_sql, "CUSTOMER_ID", RFM_TILES)
            return _with_rfm_segment(scored, list(features.columns))
    narrow = features.select(
        F.col("CUSTOMER_ID").alias("_SCORE_ID"), F.col("RECENCY_DAYS"), F.col("FREQUENCY"), F.col("MONETARY")
    )
    scores = narrow.select(
        F.col("_SCORE_ID"), *[ntile_window(tile, "_SCORE_ID").alias(tile.name) for tile in RFM_TILES]
    )
    scored = features.join(scores, F.col("CUSTOMER_ID") == F.col("_SCORE_ID"))
    return _with_rfm_segment(scored, list(features.columns))


def _with_rfm_segment(scored: DataFrame, columns: list[str]) -> DataFrame:
    """``columns``, the three scores, RFM_SCORE and RFM_SEGMENT of ``scored``.

    One projection with the names known (Snowpark described the join's sides for it): drop +
    with_columns cost a DESCRIBE of the joined plan each.
    """
    return scored.select(
        *[F.col(c) for c in columns],
        F.col("R_SCORE"),
        F.col("F_SCORE"),
        F.col("M_SCORE"),
        F.concat(
            F.col("R_SCORE").cast("string"),
            F.col("F_SCORE").cast("string"),
            F.col("M_SCORE").cast("string"),
        ).alias("RFM_SCORE"),
        rfm_segment_column(F.col("R_SCORE"), F.col("F_SCORE")).alias("RFM_SEGMENT"),
    )


def summarise_rfm_segments(customer_features: DataFrame) -> pd.DataFrame:
    """Customers and net revenue per RFM segment (aggregated in the warehouse; ~11 rows out)."""
    frame = (
        customer_features.group_by("RFM_SEGMENT")
        # MONETARY is net spend in cents (a double): summed exact, the same in any row order
        .agg(F.count(F.lit(1)).alias("CUSTOMERS"), exact_sum(F.col("MONETARY"), 2).alias("REVENUE"))
        .to_pandas()
    )
    frame["REVENUE"] = frame["REVENUE"].astype(float)
    frame["CUSTOMER_SHARE"] = frame["CUSTOMERS"] / frame["CUSTOMERS"].sum()
    total = frame["REVENUE"].clip(lower=0).sum()
    frame["REVENUE_SHARE"] = frame["REVENUE"].clip(lower=0) / total if total else 0.0
    return frame.sort_values("CUSTOMERS", ascending=False).reset_index(drop=True)


def plot_rfm_treemap(rfm_segment_summary: pd.DataFrame) -> Any:
    """Treemap of the RFM segments: area = customers, colour = revenue share.

    Built with plotly's graph objects (plotly.express's treemap took 0.2-0.3 s of every run
    preparing the same eleven boxes); the root's colour is the customer-weighted mean share, as
    plotly.express colours a parent.
    """
    import plotly.graph_objects as go

    frame = rfm_segment_summary
    root = "All customers"
    customers = frame["CUSTOMERS"].astype(float)
    shares = frame["REVENUE_SHARE"].astype(float)
    total = float(customers.sum())
    fig = go.Figure(
        go.Treemap(
            labels=[root, *frame["RFM_SEGMENT"].astype(str)],
            parents=["", *[root] * len(frame)],
            values=[total, *customers],
            branchvalues="total",
            marker={
                "colors": [float((shares * customers).sum() / total) if total else 0.0, *shares],
                "colorscale": "Blues",
                "colorbar": {"title": {"text": "revenue share"}, "tickformat": ".0%"},
            },
            customdata=[
                [float(frame["REVENUE"].sum()), 1.0],
                *frame[["REVENUE", "CUSTOMER_SHARE"]].astype(float).values.tolist(),
            ],
            hovertemplate="%{label}<br>customers %{value:,}<br>net revenue %{customdata[0]:,.0f}"
            "<br>customer share %{customdata[1]:.1%}<br>revenue share %{color:.1%}<extra></extra>",
            textinfo="label+value+percent root",
        )
    )
    fig.update_layout(title="RFM segments (area: customers, colour: share of net revenue)")
    return fig
