"""The per-customer purchase summary the customer-value model reads: x, t_x, T and the mean repeat spend.

Definitions (issue 21, docs/customer-value.md), in days:
- a *transaction* is a day with at least one order that is not cancelled (an order is cancelled
  when it has an ORDER_CANCELLED event); several orders on one day are one transaction;
- the spend of a transaction is the net value of that day's orders that are not cancelled
  (ordered - returned), as CUSTOMER_DAILY_SPEND's KEPT_NET_SPEND holds it;
- ``X`` = transaction days - 1 (repeat transactions); ``T_X`` = days from the first to the last
  transaction day; ``T`` = days from the first transaction day to the reference date (the one
  recency uses); ``MEAN_VALUE`` = mean spend of the repeat transactions (the first one left out,
  as Fader & Hardie and lifetimes do), NULL when ``X`` = 0;
- a customer whose every order was cancelled has no transaction: they are summarised as a
  one-time buyer at the day of their first order (X = 0, T_X = 0), so that every customer with an
  order gets a value.

The reference-date-free part (:data:`ROLLUP_COLUMNS`) is rolled up from the order days once and
kept in CUSTOMER_AGGREGATES, so the daily run recomputes it for the customers with new events only
(``rfm_features``); :func:`summary_at` adds what depends on the reference date. The holdout check
rolls up the order days before its cut-off with the same :func:`transaction_rollup`.
"""

from __future__ import annotations

from datetime import date
from typing import Any

import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F
from snowflake.snowpark.types import DecimalType

from customer_segmentation.exact import exact_sum

#: Money is summed exact (NUMBER(18,2)), as the features do (rfm_features.nodes.MONEY).
MONEY = DecimalType(18, 2)
#: CUSTOMER_AGGREGATES' customer-value columns (reference-date free).
ROLLUP_COLUMNS = ("FIRST_TXN_DAY", "LAST_TXN_DAY", "TXN_DAYS", "REPEAT_NET_SPEND")
#: What :func:`summary_at` returns (the CUSTOMER_VALUE columns before the scores).
SUMMARY_COLUMNS = (
    "CUSTOMER_ID",
    "REFERENCE_DATE",
    "FIRST_PURCHASE_DATE",
    "LAST_PURCHASE_DATE",
    "X",
    "T_X",
    "T",
    "MEAN_VALUE",
)


def _sum_money(column: Any) -> Any:
    # the CASTs keep the sum exact on the embedded warehouse too, its type NUMBER(18,2) (see
    # rfm_features.nodes._money_sum)
    return F.sum(column.cast(MONEY)).cast(MONEY)


def _is_transaction() -> Any:
    return F.col("KEPT_ORDERS") > F.lit(0)


def rollup_aggregates() -> list[Any]:
    """Aggregates over one customer's CUSTOMER_DAILY_SPEND rows (used inside a GROUP BY CUSTOMER_ID).

    ``_TXN_NET_SPEND`` is a helper: :func:`add_repeat_spend` turns it into REPEAT_NET_SPEND.
    """
    txn, day = _is_transaction(), F.col("ORDER_DAY")
    return [
        F.min(F.iff(txn, day, F.lit(None))).alias("FIRST_TXN_DAY"),
        F.max(F.iff(txn, day, F.lit(None))).alias("LAST_TXN_DAY"),
        F.sum(F.iff(txn, F.lit(1), F.lit(0))).alias("TXN_DAYS"),
        _sum_money(F.iff(txn, F.col("KEPT_NET_SPEND"), F.lit(0))).alias("_TXN_NET_SPEND"),
    ]


def add_repeat_spend(per_customer: DataFrame, daily_rows: DataFrame) -> DataFrame:
    """REPEAT_NET_SPEND = spend of all transactions - spend of the first one (a join on the first day's row).

    ``per_customer`` has CUSTOMER_ID and :func:`rollup_aggregates`' columns; ``daily_rows`` holds one
    row per customer and order day (CUSTOMER_DAILY_SPEND), so the join matches one row at most.
    """
    first = daily_rows.select(
        F.col("CUSTOMER_ID").alias("_F_CID"),
        F.col("ORDER_DAY").alias("_F_DAY"),
        F.col("KEPT_NET_SPEND").cast(MONEY).alias("_F_NET"),
    )
    # names unique on each side, and one projection after the join: df["X"], with_column and drop
    # each cost Snowpark a DESCRIBE (a statement of its own) of the plan they apply to
    joined = per_customer.join(
        first,
        (F.col("CUSTOMER_ID") == F.col("_F_CID")) & (F.col("FIRST_TXN_DAY") == F.col("_F_DAY")),
        how="left",
    )
    repeat = (F.col("_TXN_NET_SPEND") - F.coalesce(F.col("_F_NET"), F.lit(0).cast(MONEY))).cast(MONEY)
    kept = [F.col(c) for c in per_customer.columns if c not in ("_TXN_NET_SPEND", "REPEAT_NET_SPEND")]
    return joined.select(*kept, repeat.alias("REPEAT_NET_SPEND"))


def transaction_rollup(daily_rows: DataFrame) -> DataFrame:
    """CUSTOMER_ID, FIRST_ORDER_DAY and :data:`ROLLUP_COLUMNS` per customer, from order-day rows."""
    per_customer = daily_rows.group_by("CUSTOMER_ID").agg(
        F.min("ORDER_DAY").alias("FIRST_ORDER_DAY"), *rollup_aggregates()
    )
    return add_repeat_spend(per_customer, daily_rows)


def summary_at(rollup: DataFrame, reference_date: date) -> DataFrame:
    """The value model's input per customer (:data:`SUMMARY_COLUMNS`) at ``reference_date``.

    ``rollup`` has CUSTOMER_ID, FIRST_ORDER_DAY and :data:`ROLLUP_COLUMNS` and holds only order days
    before ``reference_date``. Days are whole calendar days (DATEDIFF on DATE values).
    """
    ref = F.lit(reference_date.isoformat()).cast("date")
    first = F.coalesce(F.col("FIRST_TXN_DAY"), F.col("FIRST_ORDER_DAY").cast("date"))
    last = F.coalesce(F.col("LAST_TXN_DAY"), first)
    x = F.greatest(F.coalesce(F.col("TXN_DAYS"), F.lit(0)).cast("int") - F.lit(1), F.lit(0))
    frame = rollup.select(
        F.col("CUSTOMER_ID"),
        first.alias("FIRST_PURCHASE_DATE"),
        last.alias("LAST_PURCHASE_DATE"),
        x.alias("X"),
        F.col("REPEAT_NET_SPEND"),
    )
    return frame.select(
        F.col("CUSTOMER_ID"),
        ref.alias("REFERENCE_DATE"),
        F.col("FIRST_PURCHASE_DATE"),
        F.col("LAST_PURCHASE_DATE"),
        F.col("X").cast("int").alias("X"),
        F.datediff("day", F.col("FIRST_PURCHASE_DATE"), F.col("LAST_PURCHASE_DATE")).cast("int").alias("T_X"),
        F.datediff("day", F.col("FIRST_PURCHASE_DATE"), ref).cast("int").alias("T"),
        # DOUBLE on both sides: Snowflake's NUMBER / NUMBER would keep a few decimals only
        F.iff(
            F.col("X") > F.lit(0),
            F.col("REPEAT_NET_SPEND").cast("double") / F.col("X").cast("double"),
            F.lit(None).cast("double"),
        ).alias("MEAN_VALUE"),
    )


def rollup_from_aggregates(aggregates: DataFrame) -> DataFrame:
    """The rollup columns :func:`summary_at` needs, out of CUSTOMER_AGGREGATES."""
    return aggregates.select(
        F.col("CUSTOMER_ID"),
        F.col("FIRST_ORDER_TS").cast("date").alias("FIRST_ORDER_DAY"),
        *[F.col(c) for c in ROLLUP_COLUMNS],
    )


def days_before(daily_rows: DataFrame, cutoff: date) -> DataFrame:
    """The order-day rows strictly before ``cutoff`` (the history a summary at ``cutoff`` may see)."""
    return daily_rows.filter(F.col("ORDER_DAY") < F.lit(cutoff.isoformat()).cast("date"))


# --- per segment (SEGMENT_SUMMARY, SEGMENT_PROFILES) ---------------------------------------------------


def segment_value_aggregates() -> list[Any]:
    """MEDIAN_P_ALIVE, TOTAL_CLV and MEDIAN_CLV, inside a GROUP BY segment (NULL values ignored)."""
    return [
        F.median(F.col("P_ALIVE").cast("double")).alias("MEDIAN_P_ALIVE"),
        exact_sum(F.col("CLV").cast("double"), 6).alias("TOTAL_CLV"),  # the same in any row order
        F.median(F.col("CLV").cast("double")).alias("MEDIAN_CLV"),
    ]


def add_value_shares(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-segment value columns as floats, and EXPECTED_REVENUE_SHARE: the segment's share of total CLV.

    A SUM of doubles may differ in its last bits with the order rows are added in, so the money
    totals are rounded to cents (and the medians to far below display precision): reruns agree.
    """
    frame = frame.copy()
    for column in ("MEDIAN_P_ALIVE", "TOTAL_CLV", "MEDIAN_CLV"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce").astype(float)
    frame["TOTAL_CLV"] = frame["TOTAL_CLV"].round(2)
    frame["MEDIAN_P_ALIVE"] = frame["MEDIAN_P_ALIVE"].round(10)
    frame["MEDIAN_CLV"] = frame["MEDIAN_CLV"].round(6)
    total = frame["TOTAL_CLV"].clip(lower=0).sum()
    frame["EXPECTED_REVENUE_SHARE"] = frame["TOTAL_CLV"].clip(lower=0) / total if total else 0.0
    return frame


def join_same_date(
    frame: DataFrame, customer_value: DataFrame | None, columns: dict[str, str], prefix: str = ""
) -> tuple[DataFrame, list[str]]:
    """``frame`` with CUSTOMER_VALUE's ``columns`` (name -> SQL type) of the same REFERENCE_DATE.

    A left join on CUSTOMER_VALUE's key (CUSTOMER_ID + REFERENCE_DATE), so no row of ``frame`` is
    doubled or dropped; each column comes as ``prefix + name``, cast to its type, NULL for a
    customer without a value of that date (a stale CUSTOMER_VALUE never mixes dates). Returns the
    frame and the names joined: none (``frame`` unchanged) when CUSTOMER_VALUE is missing, lacks
    its key or has none of ``columns``. The join's keys (``_VALUE_ID``, ``_VALUE_REF``) stay in
    the frame: callers select the columns they keep (a ``drop`` would cost a DESCRIBE of the join).
    """
    available = set(customer_value.columns) if customer_value is not None else set()
    present = [c for c in columns if c in available]
    if not present or not {"CUSTOMER_ID", "REFERENCE_DATE"} <= available:
        return frame, []
    value = customer_value.select(
        F.col("CUSTOMER_ID").alias("_VALUE_ID"),
        F.col("REFERENCE_DATE").alias("_VALUE_REF"),
        *[F.col(c).cast(columns[c]).alias(prefix + c) for c in present],
    )
    joined = frame.join(
        value,
        (frame["CUSTOMER_ID"] == value["_VALUE_ID"]) & (frame["REFERENCE_DATE"] == value["_VALUE_REF"]),
        how="left",
    )
    return joined, present
