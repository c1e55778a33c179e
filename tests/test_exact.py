"""Exact aggregates: the same sums and means whatever order the rows are added in."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from snowflake.snowpark import functions as F

from customer_segmentation.exact import exact_mean, exact_moments, exact_sum, moment_mean, population_sd

#: Added in this order, doubles lose the 1 (1e16 + 1 rounds to 1e16); in the other order they keep it.
VALUES = [1e16, 1.0, -1e16, 0.25]


def _table(session: Any, name: str, values: list[float]) -> Any:
    rows = " UNION ALL ".join(
        f"SELECT {i} AS I, CAST({float(v)!r} AS DOUBLE) AS X" for i, v in enumerate(values)
    )
    session.sql(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM ({rows}) ORDER BY I").collect()
    return session.table(name)


def test_a_double_sum_depends_on_the_order_and_the_exact_one_does_not(warehouse_session: Any) -> None:
    one = _table(warehouse_session, "EXACT_ONE", VALUES)
    other = _table(warehouse_session, "EXACT_OTHER", [VALUES[2], VALUES[0], VALUES[1], VALUES[3]])
    plain = [float(t.agg(F.sum("X")).collect()[0][0]) for t in (one, other)]
    assert plain[0] != plain[1]  # the premise: on this table DuckDB adds in row order
    exact = [
        t.agg(exact_sum(F.col("X")).alias("S"), exact_mean(F.col("X")).alias("M")).collect()[0]
        for t in (one, other)
    ]
    assert float(exact[0]["S"]) == float(exact[1]["S"]) == 1.25
    assert exact[0]["M"] == exact[1]["M"] == pytest.approx(1.25 / 4)


def test_the_mean_of_no_value_is_null_and_nulls_are_left_out(warehouse_session: Any) -> None:
    table = warehouse_session.sql(
        "SELECT CAST(NULL AS DOUBLE) AS X UNION ALL SELECT 2.0 UNION ALL SELECT 4.0"
    )
    assert table.agg(exact_mean(F.col("X"))).collect()[0][0] == 3.0
    assert table.filter(F.col("X").is_null()).agg(exact_mean(F.col("X"))).collect()[0][0] is None


def test_moments_give_numpys_population_sd(warehouse_session: Any) -> None:
    rng = np.random.default_rng(4)
    values = list(np.round(rng.lognormal(4, 1.2, 300), 2))
    table = _table(warehouse_session, "EXACT_SD", values)
    row = table.agg(*exact_moments(F.col("X"), "X")).collect()[0]
    assert moment_mean(row["X_N"], row["X_S1"]) == pytest.approx(np.mean(values), rel=1e-12)
    assert population_sd(row["X_N"], row["X_S1"], row["X_S2"]) == pytest.approx(np.std(values), rel=1e-9)
    assert math.isnan(population_sd(0, None, None)) and math.isnan(moment_mean(None, None))


def test_integer_moments_are_summed_as_integers(warehouse_session: Any) -> None:
    table = warehouse_session.sql(
        "SELECT 3 AS D UNION ALL SELECT 5 UNION ALL SELECT CAST(NULL AS INT) UNION ALL SELECT 10"
    )
    row = table.agg(*exact_moments(F.col("D"), "D", integer=True)).collect()[0]
    assert (row["D_N"], int(row["D_S1"]), int(row["D_S2"])) == (3, 18, 134)
    assert population_sd(row["D_N"], row["D_S1"], row["D_S2"]) == pytest.approx(np.std([3, 5, 10]), rel=1e-12)
