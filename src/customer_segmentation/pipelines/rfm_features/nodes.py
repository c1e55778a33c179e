"""Per-customer features computed in the warehouse with Snowpark (no raw events leave it).

Definitions (also in the README):
- orders are ORDER_CREATED events grouped by ORDER_ID; an order with an ORDER_CANCELLED event is
  cancelled; ORDER_RETURNED events refund their AMOUNT;
- RECENCY_DAYS: days from the last order to the reference date;
- FREQUENCY: distinct orders not cancelled; MONETARY: net spend = ordered - cancelled - returned.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
from snowflake.snowpark import DataFrame, Window
from snowflake.snowpark import functions as F

from customer_segmentation.pipelines.rfm_features.params import RfmFeaturesParams
from customer_segmentation.rfm import rfm_segment_column

logger = logging.getLogger(__name__)

CREATED, CANCELLED, RETURNED = "ORDER_CREATED", "ORDER_CANCELLED", "ORDER_RETURNED"


def _reference_date(events: DataFrame, params: RfmFeaturesParams) -> date:
    if params.reference_date is not None:
        return params.reference_date
    latest = events.agg(F.max("EVENT_TS").alias("M")).collect()[0][0]
    if latest is None:
        raise ValueError("TRANSFORMED_DATA holds no valid event: run `kedro run --pipeline ingestion` first.")
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


def compute_customer_features(transformed_data: DataFrame, params: RfmFeaturesParams) -> DataFrame:
    """One row per customer with at least one order: RFM, behaviour, trend and RFM scores."""
    params = RfmFeaturesParams.of(params)  # Kedro passes the validated model; tests may pass a mapping
    ref = _reference_date(transformed_data, params)
    ref_lit = F.lit(ref.isoformat()).cast("date")
    channels = [str(c).lower() for c in params.channels]
    window = params.trend_window_days
    recent_start = F.lit((ref - timedelta(days=window)).isoformat()).cast("timestamp_ntz")
    previous_start = F.lit((ref - timedelta(days=2 * window)).isoformat()).cast("timestamp_ntz")
    ref_ts = F.lit(ref.isoformat()).cast("timestamp_ntz")

    events = transformed_data.filter(
        F.col("EVENT_TYPE").isin([CREATED, CANCELLED, RETURNED]) & (F.col("EVENT_TS") < ref_ts)
    )
    typ, amount = F.col("EVENT_TYPE"), F.coalesce(F.col("AMOUNT").cast("double"), F.lit(0.0))
    orders = (
        events.group_by("CUSTOMER_ID", "ORDER_ID")
        .agg(
            F.min(F.iff(typ == CREATED, F.col("EVENT_TS"), F.lit(None))).alias("ORDER_TS"),
            F.sum(F.iff(typ == CREATED, amount, F.lit(0.0))).alias("GROSS"),
            F.sum(F.iff(typ == CANCELLED, amount, F.lit(0.0))).alias("CANCELLED_AMT"),
            F.sum(F.iff(typ == RETURNED, amount, F.lit(0.0))).alias("RETURNED_AMT"),
            F.max(F.iff(typ == CANCELLED, F.lit(1), F.lit(0))).alias("IS_CANCELLED"),
        )
        .filter(F.col("ORDER_TS").is_not_null())
        .with_column(
            "NET", F.col("GROSS") - F.least(F.col("CANCELLED_AMT"), F.col("GROSS")) - F.col("RETURNED_AMT")
        )
    )
    kept = F.col("IS_CANCELLED") == F.lit(0)
    per_customer = orders.group_by("CUSTOMER_ID").agg(
        F.min("ORDER_TS").alias("FIRST_ORDER_TS"),
        F.max("ORDER_TS").alias("LAST_ORDER_TS"),
        F.min(F.iff(kept, F.col("ORDER_TS"), F.lit(None))).alias("FIRST_KEPT_TS"),
        F.max(F.iff(kept, F.col("ORDER_TS"), F.lit(None))).alias("LAST_KEPT_TS"),
        F.count_distinct(F.iff(kept, F.col("ORDER_ID"), F.lit(None))).alias("FREQUENCY"),
        F.count(F.col("ORDER_ID")).alias("ORDERS_PLACED"),
        F.sum(F.col("IS_CANCELLED")).alias("ORDERS_CANCELLED"),
        F.sum("GROSS").alias("GROSS_SPEND"),
        F.sum("NET").alias("MONETARY"),
        F.sum("RETURNED_AMT").alias("RETURNED_SPEND"),
        F.sum(F.iff(F.col("ORDER_TS") >= recent_start, F.col("NET"), F.lit(0.0))).alias("SPEND_LAST_90D"),
        F.sum(
            F.iff(
                (F.col("ORDER_TS") >= previous_start) & (F.col("ORDER_TS") < recent_start),
                F.col("NET"),
                F.lit(0.0),
            )
        ).alias("SPEND_PREV_90D"),
    )
    lines = events.filter(typ == CREATED)
    line_aggs = [
        F.count_distinct("CATEGORY").alias("DISTINCT_CATEGORIES"),
        F.sum(amount).alias("_LINE_GROSS"),
    ]
    for channel in channels:
        line_aggs.append(
            F.sum(F.iff(F.col("CHANNEL") == F.lit(channel), amount, F.lit(0.0))).alias(
                "_CH_" + _channel_column(channel)
            )
        )
    per_line = lines.group_by(F.col("CUSTOMER_ID").alias("_CID")).agg(*line_aggs)

    feats = per_customer.join(per_line, per_customer["CUSTOMER_ID"] == per_line["_CID"], how="left")
    gross = F.col("_LINE_GROSS")
    share_cols = [
        _ratio(F.col("_CH_" + _channel_column(c)), gross).alias(_channel_column(c)) for c in channels
    ]
    freq = F.col("FREQUENCY")
    feats = feats.select(
        "CUSTOMER_ID",
        F.datediff("day", F.col("LAST_ORDER_TS"), ref_lit).alias("RECENCY_DAYS"),
        freq.alias("FREQUENCY"),
        F.round(F.col("MONETARY"), 2).alias("MONETARY"),
        F.round(_ratio(F.col("MONETARY"), freq), 2).alias("AVG_ORDER_VALUE"),
        F.datediff("day", F.col("FIRST_ORDER_TS"), ref_lit).alias("TENURE_DAYS"),
        # NULL for customers with fewer than two kept orders (no gap to average)
        _ratio(
            F.datediff("day", F.col("FIRST_KEPT_TS"), F.col("LAST_KEPT_TS")),
            F.iff(freq > F.lit(1), freq - F.lit(1), F.lit(0)),
            if_zero=None,
        ).alias("MEAN_DAYS_BETWEEN_ORDERS"),
        F.coalesce(F.col("DISTINCT_CATEGORIES"), F.lit(0)).alias("DISTINCT_CATEGORIES"),
        *share_cols,
        _ratio(F.col("RETURNED_SPEND"), F.col("GROSS_SPEND")).alias("RETURN_RATE"),
        _ratio(F.col("ORDERS_CANCELLED"), F.col("ORDERS_PLACED")).alias("CANCELLATION_RATE"),
        F.round(F.col("SPEND_LAST_90D"), 2).alias("SPEND_LAST_90D"),
        F.round(F.col("SPEND_PREV_90D"), 2).alias("SPEND_PREV_90D"),
        _ratio(
            F.col("SPEND_LAST_90D") - F.col("SPEND_PREV_90D"),
            F.abs(F.col("SPEND_LAST_90D")) + F.abs(F.col("SPEND_PREV_90D")),
        ).alias("SPEND_TREND"),
        F.col("FIRST_ORDER_TS"),
        F.col("LAST_ORDER_TS"),
        ref_lit.alias("REFERENCE_DATE"),
    )
    return add_rfm_scores(feats)


def add_rfm_scores(features: DataFrame) -> DataFrame:
    """R, F, M quintile scores (1-5, recent/frequent/high spend = 5) and the RFM segment name."""
    r = F.ntile(F.lit(5)).over(Window.order_by(F.col("RECENCY_DAYS").desc(), F.col("CUSTOMER_ID")))
    f = F.ntile(F.lit(5)).over(
        Window.order_by(F.col("FREQUENCY").asc(), F.col("MONETARY").asc(), F.col("CUSTOMER_ID"))
    )
    m = F.ntile(F.lit(5)).over(Window.order_by(F.col("MONETARY").asc(), F.col("CUSTOMER_ID")))
    scored = features.with_columns(["R_SCORE", "F_SCORE", "M_SCORE"], [r, f, m])
    return scored.with_columns(
        ["RFM_SCORE", "RFM_SEGMENT"],
        [
            F.concat(
                F.col("R_SCORE").cast("string"),
                F.col("F_SCORE").cast("string"),
                F.col("M_SCORE").cast("string"),
            ),
            rfm_segment_column(F.col("R_SCORE"), F.col("F_SCORE")),
        ],
    )


def summarise_rfm_segments(customer_features: DataFrame) -> pd.DataFrame:
    """Customers and net revenue per RFM segment (aggregated in the warehouse; ~11 rows out)."""
    frame = (
        customer_features.group_by("RFM_SEGMENT")
        .agg(F.count(F.lit(1)).alias("CUSTOMERS"), F.sum("MONETARY").alias("REVENUE"))
        .to_pandas()
    )
    frame["REVENUE"] = frame["REVENUE"].astype(float)
    frame["CUSTOMER_SHARE"] = frame["CUSTOMERS"] / frame["CUSTOMERS"].sum()
    total = frame["REVENUE"].clip(lower=0).sum()
    frame["REVENUE_SHARE"] = frame["REVENUE"].clip(lower=0) / total if total else 0.0
    return frame.sort_values("CUSTOMERS", ascending=False).reset_index(drop=True)


def plot_rfm_treemap(rfm_segment_summary: pd.DataFrame) -> Any:
    """Treemap of the RFM segments: area = customers, colour = revenue share."""
    import plotly.express as px

    fig = px.treemap(
        rfm_segment_summary,
        path=[px.Constant("All customers"), "RFM_SEGMENT"],
        values="CUSTOMERS",
        color="REVENUE_SHARE",
        color_continuous_scale="Blues",
        hover_data={"REVENUE": ":,.0f", "CUSTOMER_SHARE": ":.1%"},
        title="RFM segments (area: customers, colour: share of net revenue)",
    )
    fig.update_traces(textinfo="label+value+percent root")
    return fig
