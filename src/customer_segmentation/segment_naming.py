"""Segment names taken from the members of each cluster, not from its centroid.

A cluster's *base name* is the classic RFM segment (``RFM_SEGMENT``, computed in the warehouse
for the whole population) that most of its members hold. When that cell is the plurality of
another cluster that holds more of its customers, and this cluster really spans two cells (its
second cell holds at least ``SPAN_RATIO`` of its plurality), it takes its second cell instead.
Clusters that still share a base name get a qualifier naming the feature whose member medians
differ most between them (standardised in the model's log/standard space), in the direction the
medians show; three or more clusters are split one feature at a time. Descriptions quote member
medians. Why members and not centroids: a back-transformed centroid mean sits where few customers
are on heavy-tailed data, so centroid names contradicted their members (issue 9).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from customer_segmentation.errors import MissingColumnsError
from customer_segmentation.rfm import RFM_SEGMENT_RULES

#: A cluster "spans two cells" when its second RFM cell holds at least this share of its plurality.
SPAN_RATIO = 0.5
#: Cell order used to break exact count ties (the order of the classic map, best segments first).
CELL_ORDER = {name: i for i, (_, _, name) in enumerate(RFM_SEGMENT_RULES)}
#: Features tried first for a qualifier when two give exactly the same separation.
PREFERRED = ("RECENCY_DAYS", "FREQUENCY", "MONETARY", "SPEND_TREND", "TENURE_DAYS")

#: feature -> (phrase for the higher median, phrase for the lower median)
PHRASES: dict[str, tuple[str, str]] = {
    "RECENCY_DAYS": ("less recent", "more recent"),
    "FREQUENCY": ("more orders", "fewer orders"),
    "MONETARY": ("higher spend", "lower spend"),
    "AVG_ORDER_VALUE": ("larger orders", "smaller orders"),
    "TENURE_DAYS": ("longer tenure", "shorter tenure"),
    "DISTINCT_CATEGORIES": ("more categories", "fewer categories"),
    "RETURN_RATE": ("more returns", "fewer returns"),
    "CANCELLATION_RATE": ("more cancellations", "fewer cancellations"),
    "MEAN_DAYS_BETWEEN_ORDERS": ("longer gaps between orders", "shorter gaps between orders"),
    "SPEND_TREND": ("higher spend trend", "lower spend trend"),
    "SPEND_LAST_90D": ("higher recent spend", "lower recent spend"),
    "SPEND_PREV_90D": ("higher earlier spend", "lower earlier spend"),
}


@dataclass
class SegmentNames:
    """Names of the k segments and the evidence behind them (one entry per segment id)."""

    labels: list[str]
    base_labels: list[str]
    descriptions: list[str]
    faithfulness: list[float]  # share of members whose classic RFM segment is the base label
    medians: list[dict[str, float]]
    rfm_mix: list[dict[str, float]] = field(default_factory=list)  # member share per RFM segment
    qualifier_features: list[list[str]] = field(default_factory=list)


def _space(raw: pd.DataFrame, log_features: list[str]) -> tuple[pd.DataFrame, pd.Series]:
    """The model's space (log1p on skewed features) and each feature's spread (std) in it."""
    values = raw.fillna(0.0).copy()
    for name in values.columns:
        if name in log_features:
            values[name] = np.log1p(values[name].clip(lower=0.0))
    scales = values.std(ddof=0).replace(0.0, 1.0)
    return values, scales


def _standardised(stats: pd.DataFrame, log_features: list[str], scales: pd.Series) -> pd.DataFrame:
    """Per-cluster statistics in original units, mapped into the model's space and divided by the spread.

    Medians are taken in original units and then transformed: log1p is monotone, so the order
    of two clusters' medians (and so the direction a qualifier states) is the order of the raw medians.
    """
    out = stats.copy()
    for name in out.columns:
        if name in log_features:
            out[name] = np.log1p(out[name].clip(lower=0.0))
    return out / scales


def _cell_distance(name: str, r: float, f: float) -> float:
    """How far a median (R, F) score pair lies from a classic segment's cells (0 inside)."""
    best = float("inf")
    for r_scores, f_scores, cell in RFM_SEGMENT_RULES:
        if cell == name:
            dr = max(min(r_scores) - r, 0.0, r - max(r_scores))
            df = max(min(f_scores) - f, 0.0, f - max(f_scores))
            best = min(best, dr + df)
    return best


def _rfm_counts(frame: pd.DataFrame, assigned: np.ndarray, k: int) -> list[pd.Series]:
    """Members per classic RFM segment, per cluster, most frequent first.

    Equal counts (common in small clusters) go to the cell nearest the members' median R and F
    scores, then to the map order: three cells tied among customers whose last order was a year ago
    should not resolve to "New customers" just because that cell is listed first.
    """
    has_scores = {"R_SCORE", "F_SCORE"} <= set(frame.columns)
    counts = []
    for i in range(k):
        members = frame[assigned == i]
        c = members["RFM_SEGMENT"].dropna().value_counts()
        r = float(pd.to_numeric(members["R_SCORE"]).median()) if has_scores and len(members) else 0.0
        f = float(pd.to_numeric(members["F_SCORE"]).median()) if has_scores and len(members) else 0.0

        def key(name: str) -> tuple[int, float, int, str]:
            near = _cell_distance(name, r, f) if has_scores else 0.0
            return (-int(c[name]), near, CELL_ORDER.get(name, len(CELL_ORDER)), str(name))

        counts.append(c.reindex(sorted(c.index, key=key)).astype(int))
    return counts


def choose_base_names(counts: list[pd.Series]) -> list[str]:
    """Plurality RFM segment per cluster, or its second cell when another cluster holds more of the first.

    A plurality cell claimed by several clusters stays with the cluster holding the most of its
    customers (then the larger member share, then the lower id). Each other claimant takes its
    second cell if it spans it (>= SPAN_RATIO of its plurality) and no cluster has that cell already;
    otherwise it keeps the plurality name and gets a qualifier later.
    """
    k = len(counts)
    sizes = [int(c.sum()) for c in counts]
    plurality = [c.index[0] if len(c) else "No classic segment" for c in counts]
    base = list(plurality)
    losers = []
    for cell in dict.fromkeys(plurality):
        claimants = [i for i in range(k) if plurality[i] == cell]
        ranked = sorted(
            claimants,
            key=lambda i: (-int(counts[i].get(cell, 0)), -counts[i].get(cell, 0) / max(sizes[i], 1), i),
        )
        losers.extend(ranked[1:])

    def second(i: int) -> tuple[str | None, int]:
        """The cluster's second cell and its members there, when the cluster spans it."""
        c = counts[i]
        if len(c) < 2 or c.iloc[1] < SPAN_RATIO * c.iloc[0]:
            return None, 0
        return c.index[1], int(c.iloc[1])

    taken = set(plurality)
    for i in sorted(losers, key=lambda i: (-second(i)[1], i)):  # more customers in the second cell first
        cell, _ = second(i)
        if cell is not None and cell not in taken:
            base[i] = cell
            taken.add(cell)
    return base


def _split(
    group: list[int], medians: pd.DataFrame, means: pd.DataFrame, order: list[str]
) -> tuple[str, list[int], list[int], str] | None:
    """The feature with the widest standardised gap between sorted cluster medians (means if none)."""
    for stat, source in (("median", medians), ("mean", means)):
        best: tuple[float, str, list[int], list[int]] | None = None
        for name in order:
            values = source.loc[group, name].sort_values(kind="stable")
            gaps = values.diff().iloc[1:]
            if not len(gaps) or float(gaps.max()) <= 1e-12:
                continue
            cut = int(np.argmax(gaps.to_numpy())) + 1
            if best is None or float(gaps.max()) > best[0] + 1e-12:
                best = (float(gaps.max()), name, list(values.index[:cut]), list(values.index[cut:]))
        if best is not None:
            return best[1], best[2], best[3], stat
    return None


def _phrases(name: str, low: list[int], high: list[int], raw_medians: pd.DataFrame) -> tuple[str, str]:
    """(phrase for the high side, phrase for the low side) of a split on ``name``."""
    if name == "SPEND_TREND":

        def sign(ids: list[int]) -> str | None:
            v = raw_medians.loc[ids, name]
            return (
                "rising spend"
                if (v > 0).all()
                else "falling spend"
                if (v < 0).all()
                else "flat spend"
                if (v == 0).all()
                else None
            )

        hi, lo = sign(high), sign(low)
        if hi and lo and hi != lo:
            return hi, lo
    if name in PHRASES:
        return PHRASES[name]
    readable = name.lower().replace("_", " ")
    return f"higher {readable}", f"lower {readable}"


def qualify(
    base: list[str],
    medians: pd.DataFrame,
    means: pd.DataFrame,
    raw_medians: pd.DataFrame,
    features: list[str],
) -> tuple[list[str], list[list[str]]]:
    """Unique labels: clusters sharing a base name are split by the feature that separates them most.

    A group of three or more is split again, preferring a feature not used above it; when only the
    same feature separates them the further side says "more so" (e.g. "smaller orders, more so").
    """
    order = [f for f in PREFERRED if f in features] + [f for f in features if f not in PREFERRED]
    tags: list[list[str]] = [[] for _ in base]
    used: list[list[str]] = [[] for _ in base]
    groups = [[i for i, b in enumerate(base) if b == name] for name in dict.fromkeys(base)]
    # (clusters, {feature used above: +1 if this group was its high side, -1 if its low side})
    pending: list[tuple[list[int], dict[str, int]]] = [(g, {}) for g in groups if len(g) > 1]
    while pending:
        group, above = pending.pop()
        found = _split(group, medians, means, [f for f in order if f not in above]) or _split(
            group, medians, means, order
        )
        if found is None:  # identical members on every feature: number them, as nothing tells them apart
            for n, i in enumerate(sorted(group)):
                tags[i].append(f"group {n + 1}")
            continue
        name, low, high, _ = found
        if name in above:
            high_phrase, low_phrase = ("more so", "less so") if above[name] > 0 else ("less so", "more so")
        else:
            high_phrase, low_phrase = _phrases(name, low, high, raw_medians)
        for side, phrase, direction in ((high, high_phrase, 1), (low, low_phrase, -1)):
            for i in side:
                tags[i].append(phrase)
                used[i].append(name)
            if len(side) > 1:
                pending.append((side, {**above, name: above.get(name, direction)}))
    labels = [f"{b} ({', '.join(t)})" if t else b for b, t in zip(base, tags)]
    return labels, used


def _quote(name: str, value: float) -> str:
    """One median in words."""
    if name == "RECENCY_DAYS":
        return f"last order {value:.0f} days ago"
    if name == "FREQUENCY":
        return (
            "no order kept (all cancelled)" if value == 0 else f"{value:g} order{'s' if value != 1 else ''}"
        )
    if name == "MONETARY":
        return f"{value:,.0f} net spend"
    if name == "AVG_ORDER_VALUE":
        return f"{value:,.0f} per order"
    if name == "TENURE_DAYS":
        return f"customer for {value:.0f} days"
    if name == "DISTINCT_CATEGORIES":
        return f"{value:g} categories"
    if name == "RETURN_RATE":
        return f"{value:.0%} of spend returned"
    if name == "CANCELLATION_RATE":
        return f"{value:.0%} of orders cancelled"
    if name == "SPEND_TREND":
        return f"spend trend {value:+.2f}"
    return f"{name.lower().replace('_', ' ')} {value:.3g}"


def name_segments(
    sample: pd.DataFrame, assigned: np.ndarray, k: int, features: list[str], log_features: list[str]
) -> SegmentNames:
    """Labels, base labels, median-based descriptions and faithfulness for clusters ``0..k-1``."""
    if "RFM_SEGMENT" not in sample.columns:
        raise MissingColumnsError(
            "The training sample lacks RFM_SEGMENT (the classic RFM segment segments are named after): "
            "rerun `kedro run --pipelines rfm_features`, then train again."
        )
    assigned = np.asarray(assigned)
    frame = sample.reset_index(drop=True)
    counts = _rfm_counts(frame, assigned, k)
    base = choose_base_names(counts)
    groups = pd.Series(assigned, index=frame.index)
    raw = frame[features].apply(pd.to_numeric, errors="coerce").astype(float)
    space, scales = _space(raw, log_features)
    raw_medians = raw.fillna(0.0).groupby(groups).median().reindex(range(k))
    medians = _standardised(raw_medians, log_features, scales)
    means = (space.groupby(groups).mean() / scales).reindex(range(k))  # fallback when all medians tie
    labels, used = qualify(base, medians, means, raw_medians, features)

    sizes = np.bincount(assigned, minlength=k)
    faithfulness, descriptions, mixes = [], [], []
    for i in range(k):
        size = int(sizes[i])
        share = float(counts[i].get(base[i], 0) / size) if size else float("nan")
        faithfulness.append(share)
        mixes.append({str(cell): float(n / size) for cell, n in counts[i].items()} if size else {})
        quoted = ["RECENCY_DAYS", "FREQUENCY", "MONETARY"]
        quoted += [f for f in dict.fromkeys(used[i]) if f not in quoted]
        parts = ", ".join(_quote(f, float(raw_medians.loc[i, f])) for f in quoted if f in raw_medians.columns)
        text = f"Median customer: {parts}; {share:.0%} of members are classic-RFM {base[i]}"
        if len(counts[i]) and counts[i].index[0] != base[i]:
            top = counts[i].index[0]
            text += f" (most common: {top}, {counts[i].iloc[0] / size:.0%}, the name of a segment holding more of them)"
        descriptions.append(text + ".")
    return SegmentNames(
        labels=labels,
        base_labels=base,
        descriptions=descriptions,
        faithfulness=faithfulness,
        medians=[{f: float(raw_medians.loc[i, f]) for f in features} for i in range(k)],
        rfm_mix=mixes,
        qualifier_features=used,
    )


def faithfulness_summary(names: SegmentNames, sizes: np.ndarray) -> dict[str, Any]:
    """Share of all members whose classic RFM segment matches their label, and the weakest segment."""
    sizes = np.asarray(sizes, dtype=float)
    shares = np.nan_to_num(np.asarray(names.faithfulness, dtype=float))
    total = float(sizes.sum()) or 1.0
    weakest = int(np.argmin(shares)) if len(shares) else None
    return {
        "faithful_share": float((shares * sizes).sum() / total),
        "weakest_segment": names.labels[weakest] if weakest is not None else None,
        "weakest_share": float(shares[weakest]) if weakest is not None else None,
    }
