"""Classic RFM: quintile scores and the usual R/F score-to-segment map (one definition, two uses)."""

from __future__ import annotations

from typing import Any

#: (R scores, F scores, segment): the most copied RFM map, with R=1 split out as "Lost".
RFM_SEGMENT_RULES: tuple[tuple[tuple[int, ...], tuple[int, ...], str], ...] = (
    ((5,), (4, 5), "Champions"),
    ((3, 4), (4, 5), "Loyal customers"),
    ((4, 5), (2, 3), "Potential loyalists"),
    ((5,), (1,), "New customers"),
    ((4,), (1,), "Promising"),
    ((3,), (3,), "Need attention"),
    ((3,), (1, 2), "About to sleep"),
    ((1, 2), (5,), "Cannot lose them"),
    ((1, 2), (3, 4), "At risk"),
    ((2,), (1, 2), "Hibernating"),
    ((1,), (1, 2), "Lost"),
)

RFM_SEGMENT_DESCRIPTIONS = {
    "Champions": "Bought recently, buy often and spend the most.",
    "Loyal customers": "Buy regularly; responsive to loyalty programmes.",
    "Potential loyalists": "Recent customers with a few orders: nurture into loyalty.",
    "New customers": "First order very recently.",
    "Promising": "Recent, but only one order so far.",
    "Need attention": "Average recency and frequency: re-engage before they slip.",
    "About to sleep": "Below-average recency and frequency: will be lost without a nudge.",
    "Cannot lose them": "Used to buy very often, but not for a long time.",
    "At risk": "Bought often, but long ago: win them back.",
    "Hibernating": "Few orders, long ago.",
    "Lost": "Lowest recency and frequency.",
}


def rfm_segment(r_score: int, f_score: int) -> str:
    """Segment name for an R score and an F score (1-5 each)."""
    for r_scores, f_scores, name in RFM_SEGMENT_RULES:
        if r_score in r_scores and f_score in f_scores:
            return name
    raise ValueError(f"RFM scores must be 1-5, got R={r_score}, F={f_score}")


def rfm_segment_column(r_score: Any, f_score: Any) -> Any:
    """The same map as a Snowpark column expression."""
    from snowflake.snowpark import functions as F

    expr = None
    for r_scores, f_scores, name in RFM_SEGMENT_RULES:
        cond = r_score.isin(list(r_scores)) & f_score.isin(list(f_scores))
        expr = F.when(cond, F.lit(name)) if expr is None else expr.when(cond, F.lit(name))
    return expr.otherwise(F.lit(None))
