"""Customer value scored inside the warehouse: the closed forms of ``value_model`` as Snowpark SQL.

Per customer, everything that depends on t_x or on the spend is one SQL expression over the summary
(LN, EXP, ABS, GREATEST, COALESCE, IFF: Snowflake functions the embedded warehouse also runs):

- P_ALIVE [FHL08]: u = LN(a) - LN(b + X - 1) + (r + X) (LN(alpha + T) - LN(alpha + T_X)), then the
  logistic 1 / (1 + e^u) from EXP(-|u|) only (EXP never overflows, whatever X);
- EXPECTED_ORDER_VALUE [FHLb05]: (p gamma + p X m) / (p X + q - 1), m = mean repeat spend (>= 0);
- EXPECTED_PURCHASES = P_ALIVE * U(horizon) and CLV = margin * EXPECTED_ORDER_VALUE * P_ALIVE * D,

where U (purchases of a customer alive at T, [FHL05 eq. 10]) and D (the same, cut into periods and
discounted) hold the Gauss hypergeometric function, which SQL cannot evaluate exactly. They depend on
(X, T) only, so they are computed in Python (``value_model.alive_value_lookup``, a series with a proven
error bound) for the DISTINCT (X, T) pairs of the summary, written to a temporary table and joined
back. Only those pairs cross to Python (bounded by the range of X times the range of T, not by the
number of customers); the customers never do.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation.errors import MissingColumnsError, TransactionStateError
from customer_segmentation.value_model import (
    ValueFitError,
    ValueModel,
    alive_purchase_curve,
    alive_value_lookup,
    check_clv_settings,
)
from customer_segmentation.warehouse.tables import append_pandas, transaction_may_be_open

__all__ = ["MAX_LOOKUP_PAIRS", "SUMMARY_COLUMNS", "score_customers", "value_lookup"]

SUMMARY_COLUMNS = ("CUSTOMER_ID", "X", "T_X", "T", "MEAN_VALUE")
#: Most distinct (X, T) pairs the lookup accepts (x up to ~1,000 by ten years of days is ~2M at worst).
MAX_LOOKUP_PAIRS = 2_000_000
#: Pairs evaluated per numpy batch (bounded memory: a batch is CHUNK x periods doubles).
CHUNK = 100_000
#: P(alive) is computed from EXP(-|u|), floored at EXP(-700) (~1e-304) so that no engine under- or
#: overflows; a P(alive) below ~1e-304 is reported as that, not as a smaller number or exactly 0.
EXP_FLOOR = -700.0


def value_lookup(
    model: ValueModel,
    pairs: pd.DataFrame,
    horizon_days: int,
    annual_discount_rate: float,
    outcome_days: int | None = None,
) -> pd.DataFrame:
    """The lookup rows for distinct (X, T) pairs: _X, _T, _ALIVE_PURCHASES (U at the horizon) and
    _ALIVE_DISCOUNTED (D), computed in batches of CHUNK pairs; with ``outcome_days``, also
    _ALIVE_PURCHASES_OUTCOME (U over those days: the window SEGMENT_OUTCOMES measures)."""
    x = pairs["X"].to_numpy(dtype=float)
    T = pairs["T"].to_numpy(dtype=float)
    if len(x) and (
        not np.isfinite(x).all()
        or not np.isfinite(T).all()
        or (x < 0).any()
        or (x != np.round(x)).any()
        or (T < 0).any()
    ):
        raise ValueFitError(
            "The customer value summary holds an X that is not a whole number >= 0, or a T < 0 (or NULL): "
            "summarise the customers again (`kedro run --pipelines customer_value`)."
        )
    purchases = np.empty(len(x))
    discounted = np.empty(len(x))
    outcome = np.empty(len(x))
    for start in range(0, len(x), CHUNK):
        part = slice(start, start + CHUNK)
        purchases[part], discounted[part] = alive_value_lookup(
            model.bgnbd.params, x[part], T[part], horizon_days, annual_discount_rate
        )
        if outcome_days is not None:
            outcome[part] = alive_purchase_curve(model.bgnbd.params, x[part], T[part], float(outcome_days))
    lookup = {"_X": x, "_T": T, "_ALIVE_PURCHASES": purchases, "_ALIVE_DISCOUNTED": discounted}
    if outcome_days is not None:
        lookup["_ALIVE_PURCHASES_OUTCOME"] = outcome
    return pd.DataFrame(lookup)


def _p_alive_log_odds(m: Any) -> Any:
    """u of P(alive | X, T_X, T) = 1 / (1 + e^u) [FHL08] as a Snowpark expression, in log space (see the
    module docstring). Computed once per row into a column: :func:`_p_alive` reads it three times."""
    x = F.col("X").cast("double")
    repeat = x > F.lit(0.0)
    return (
        F.lit(float(np.log(m.a)))
        - F.ln(F.iff(repeat, F.lit(m.b - 1.0) + x, F.lit(1.0)))  # LN only of positive values
        + (F.lit(m.r) + x)
        * (
            F.ln(F.lit(m.alpha) + F.col("T").cast("double"))
            - F.ln(F.lit(m.alpha) + F.col("T_X").cast("double"))
        )
    )


def _p_alive(u: Any, e: Any) -> Any:
    """P(alive) from u (:func:`_p_alive_log_odds`) and e = EXP(-|u|) floored (columns of an inner SELECT):
    the logistic 1 / (1 + e^u) from EXP(-|u|) only, so EXP never overflows, whatever X."""
    logistic = F.iff(u > F.lit(0.0), e / (F.lit(1.0) + e), F.lit(1.0) / (F.lit(1.0) + e))
    return F.iff(F.col("X").cast("double") > F.lit(0.0), logistic, F.lit(1.0))


def _expected_order_value(g: Any) -> Any:
    """Gamma-Gamma conditional mean spend [FHLb05] as a Snowpark expression (NULL/negative mean as 0)."""
    x = F.col("X").cast("double")
    mean = F.iff(
        x > F.lit(0.0),
        F.greatest(F.coalesce(F.col("MEAN_VALUE").cast("double"), F.lit(0.0)), F.lit(0.0)),
        F.lit(0.0),
    )
    return (F.lit(g.p * g.gamma) + F.lit(g.p) * x * mean) / (F.lit(g.p) * x + F.lit(g.q - 1.0))


def score_customers(
    session: Any,
    summary: DataFrame,
    model: ValueModel,
    *,
    horizon_days: int,
    annual_discount_rate: float,
    margin: float,
    outcome_days: int | None = None,
    carry: Sequence[str] = (),
) -> DataFrame:
    """CUSTOMER_ID, the ``carry`` columns of the summary, P_ALIVE, EXPECTED_PURCHASES, EXPECTED_ORDER_VALUE,
    CLV for every summary row (``carry`` saves the caller a join of the summary with its own scores).

    With ``outcome_days``, also OUTCOME_EXPECTED_PURCHASES (E[Y(outcome_days) | X, T_X, T]) and
    OUTCOME_EXPECTED_SPEND (times EXPECTED_ORDER_VALUE; undiscounted, no margin): the prediction
    for the window SEGMENT_OUTCOMES compares with what happened.

    ``summary``: CUSTOMER_ID, X, T_X, T (days), MEAN_VALUE (NULL when X = 0). Runs one query for the
    DISTINCT (X, T) pairs, writes their lookup (see the module docstring) to a temporary table of this
    session (DDL: never inside a transaction), and returns a lazy DataFrame joining it back, so the
    summary must not change before the result is saved. Equal to ``value_model.p_alive``,
    ``expected_purchases``, ``expected_order_value`` and ``clv`` within 1e-6 relative.
    """
    check_clv_settings(horizon_days, annual_discount_rate, margin)
    columns = [c.strip('"').upper() for c in summary.columns]
    missing = [c for c in SUMMARY_COLUMNS if c not in columns]
    if missing:
        raise MissingColumnsError(
            f"The customer summary lacks column(s) {', '.join(missing)} needed to score customer value "
            f"(expected {', '.join(SUMMARY_COLUMNS)})."
        )
    if transaction_may_be_open(session):
        raise TransactionStateError(
            "score_customers creates a temporary lookup table (DDL), which would commit the transaction "
            "open on this session on Snowflake: call it outside the transaction. Nothing was written."
        )
    # one scan of the summary: its distinct (X, T) pairs, each with the number of its rows that are invalid
    bad_row = (
        F.col("X").is_null()
        | F.col("T").is_null()
        | F.col("T_X").is_null()
        | (F.col("X") < F.lit(0))
        | (F.col("T_X") < F.lit(0))
        | (F.col("T_X") > F.col("T"))
    )
    pairs = (
        summary.group_by(F.col("X").cast("double").alias("X"), F.col("T").cast("double").alias("T"))
        .agg(F.sum(F.iff(bad_row, F.lit(1), F.lit(0))).alias("BAD"))
        .limit(MAX_LOOKUP_PAIRS + 1)
        .to_pandas()
    )
    if len(pairs) > MAX_LOOKUP_PAIRS:
        raise ValueFitError(
            f"The customer value summary has more than {MAX_LOOKUP_PAIRS:,} distinct (X, T) pairs: the "
            "hypergeometric lookup would be too large to compute in Python. Check X and T (days) for errors."
        )
    bad = int(pd.to_numeric(pairs["BAD"]).sum()) if len(pairs) else 0
    if bad:
        raise ValueFitError(
            f"{bad} row(s) of the customer value summary have a NULL or negative X, T_X or T, or T_X > T: "
            "summarise the customers again (`kedro run --pipelines customer_value`)."
        )
    pairs = pairs[["X", "T"]].sort_values(["X", "T"]).reset_index(drop=True)
    lookup = value_lookup(model, pairs, horizon_days, annual_discount_rate, outcome_days)
    table = f"CUSTOMER_VALUE_LOOKUP_{uuid.uuid4().hex[:12].upper()}"
    session.sql(
        f"CREATE TEMPORARY TABLE {table} ({', '.join(f'{c} DOUBLE' for c in lookup.columns)})"
    ).collect()
    if len(lookup):
        append_pandas(session, table, lookup)
    scored = summary.join(
        session.table(table),
        (F.col("X").cast("double") == F.col("_X")) & (F.col("T").cast("double") == F.col("_T")),
        how="left",
    )
    m, g = model.bgnbd.params, model.gamma_gamma.params
    lookup_names = [c for c in lookup.columns if c not in ("_X", "_T")]
    lookup_columns = [F.col(c) for c in lookup_names]
    # each step a SELECT over the one before, so that every expression is computed once per row (an
    # expression repeated in one SELECT is evaluated each time it appears)
    kept = [*dict.fromkeys(("CUSTOMER_ID", *carry, "X", "T_X", "T", "MEAN_VALUE")), *lookup_names]
    scored = scored.select(*[F.col(c) for c in kept], _p_alive_log_odds(m).alias("_U"))
    # the columns by name, not "*": a star makes Snowpark DESCRIBE the join to expand it
    scored = scored.select(
        *[F.col(c) for c in (*kept, "_U")],
        F.exp(F.greatest(-F.abs(F.col("_U")), F.lit(EXP_FLOOR))).alias("_E"),
    )
    scored = scored.select(
        F.col("CUSTOMER_ID"),
        *[F.col(c) for c in carry],
        _p_alive(F.col("_U"), F.col("_E")).alias("P_ALIVE"),
        _expected_order_value(g).alias("EXPECTED_ORDER_VALUE"),
        *lookup_columns,
    )
    outcome = F.col("P_ALIVE") * F.col("_ALIVE_PURCHASES_OUTCOME") if outcome_days is not None else None
    return scored.select(
        F.col("CUSTOMER_ID"),
        *[F.col(c) for c in carry],
        F.col("P_ALIVE").cast("double").alias("P_ALIVE"),
        (F.col("P_ALIVE") * F.col("_ALIVE_PURCHASES")).cast("double").alias("EXPECTED_PURCHASES"),
        F.col("EXPECTED_ORDER_VALUE").cast("double").alias("EXPECTED_ORDER_VALUE"),
        (F.lit(float(margin)) * F.col("EXPECTED_ORDER_VALUE") * F.col("P_ALIVE") * F.col("_ALIVE_DISCOUNTED"))
        .cast("double")
        .alias("CLV"),
        *(
            [
                outcome.cast("double").alias("OUTCOME_EXPECTED_PURCHASES"),
                (outcome * F.col("EXPECTED_ORDER_VALUE")).cast("double").alias("OUTCOME_EXPECTED_SPEND"),
            ]
            if outcome is not None
            else []
        ),
    )
