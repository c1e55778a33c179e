"""Sums and means of doubles that do not depend on the order the rows are added in.

A SUM, AVG or STDDEV of doubles rounds after each addition, so its last bits depend on the order
of the rows. Neither engine fixes that order: DuckDB adds a table of a few row groups on several
threads in an order that changes from run to run (at 1M customers, 4 to 6 different sums of the
same DISTANCE_TO_CENTROID column in 15 runs on 2 cores), and Snowflake spreads the rows over its
warehouse's threads. A rerun must give the same results (SEGMENT_DRIFT, SEGMENT_PROFILES,
SEGMENT_SUMMARY, SEGMENT_OUTCOMES), so these aggregates cast each value to a fixed-point NUMBER
first (deterministic per value) and add those: an exact integer sum, the same in any order, on
both engines (Snowflake: NUMBER arithmetic is exact within its 38 digits). ``SCALE`` decimal places
of each value are kept, far below anything shown.
"""

from __future__ import annotations

import math
from typing import Any

from snowflake.snowpark import functions as F
from snowflake.snowpark.types import DecimalType

#: Decimal places kept of each value (features, distances, probabilities): 38 - 9 = 29 digits remain
#: for the integer part of a sum, beyond any customer count times any feature value here.
SCALE = 9


def exact_sum(column: Any, scale: int = SCALE) -> Any:
    """SUM of ``column`` rounded to ``scale`` decimals per value: NUMBER(38, scale), exact."""
    return F.sum(column.cast(DecimalType(38, scale)))


def exact_mean(column: Any, scale: int = SCALE) -> Any:
    """AVG of ``column`` (NULLs ignored, NULL without a value) from its exact sum, as a double."""
    count = F.count(column)
    return F.iff(count == F.lit(0), F.lit(None), exact_sum(column, scale) / count).cast("double")


def exact_moments(column: Any, name: str, scale: int = SCALE, integer: bool = False) -> list[Any]:
    """``<name>_N``, ``<name>_S1`` and ``<name>_S2``: the count, sum and sum of squares of ``column``
    (exact, see ``exact_sum``), for ``population_sd``.

    An ``integer`` column (days, counts) is summed as it is: integer sums are exact already, and
    the cast to NUMBER(38, 9) of a double is most of these aggregates' cost (0.15 s for 25 columns
    of 1M rows in the embedded warehouse).
    """
    if integer:
        return [
            F.count(column).alias(f"{name}_N"),
            F.sum(column).alias(f"{name}_S1"),
            F.sum(column * column).alias(f"{name}_S2"),
        ]
    x = column.cast("double")
    return [
        F.count(x).alias(f"{name}_N"),
        exact_sum(x, scale).alias(f"{name}_S1"),
        exact_sum(x * x, scale).alias(f"{name}_S2"),
    ]


def moment_mean(n: Any, s1: Any) -> float:
    """Mean from ``exact_moments`` (NaN without a value)."""
    count = int(n or 0)
    return float(s1) / count if count else math.nan


def population_sd(n: Any, s1: Any, s2: Any) -> float:
    """Population standard deviation from ``exact_moments`` (NaN without a value)."""
    count = int(n or 0)
    if not count:
        return math.nan
    mean = float(s1) / count
    return math.sqrt(max(float(s2) / count - mean * mean, 0.0))
