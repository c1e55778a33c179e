"""Drift of the customer base against the training sample: PSI, segment shares, distances.

The training-time reference is computed once, when the model is fitted, and saved with it:
for each model feature the decile edges of the training sample and the share of the sample in
each bin; each segment's share of the sample; the mean distance of its members to their centroid.
Monitoring compares today's customers with it (the counts are taken in the warehouse).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

STATUSES = ("ok", "watch", "retrain_recommended")
DEFAULT_THRESHOLDS = {
    "psi_watch": 0.1,
    "psi_retrain": 0.25,
    "share_shift_watch": 0.05,
    "share_shift_retrain": 0.10,
    "distance_ratio_watch": 1.15,
    "distance_ratio_retrain": 1.3,
}


def raw_feature_values(frame: pd.DataFrame, feature: str) -> np.ndarray:
    """A feature as the model reads it before the transform (missing values are 0, as in ``transform``)."""
    return pd.to_numeric(frame[feature], errors="coerce").astype(float).fillna(0.0).to_numpy()


def bin_edges(values: np.ndarray, n_bins: int = 10) -> list[float]:
    """Distinct inner quantile edges (deciles by default); ties collapse, so counts may be < n_bins."""
    if len(values) == 0:
        return []
    quantiles = np.quantile(values, np.linspace(0, 1, n_bins + 1)[1:-1])
    return sorted({float(q) for q in quantiles})


def bin_index(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Bin of each value: the number of edges <= value (0 .. len(edges)); same rule as the SQL."""
    return np.searchsorted(np.asarray(edges, dtype=float), values, side="right")


def proportions(values: np.ndarray, edges: Sequence[float]) -> list[float]:
    """Share of the values in each of the len(edges) + 1 bins."""
    counts = np.bincount(bin_index(values, edges), minlength=len(edges) + 1).astype(float)
    total = counts.sum()
    return (counts / total).tolist() if total else counts.tolist()


def training_reference(sample: pd.DataFrame, model: Any, n_bins: int = 10) -> dict[str, Any]:
    """Feature bins and proportions, segment shares and mean distances of the training sample."""
    positions = model.predict(sample)
    scaled = model.transform(sample)
    distances = np.sqrt(((scaled - model.centroids[positions]) ** 2).sum(axis=1))
    bins = {}
    for feature in model.features:
        values = raw_feature_values(sample, feature)
        edges = bin_edges(values, n_bins)
        bins[feature] = {"edges": edges, "proportions": proportions(values, edges)}
    shares, mean_distance = [], []
    for k in range(model.k):
        mask = positions == k
        shares.append(float(mask.mean()) if len(mask) else 0.0)
        mean_distance.append(float(distances[mask].mean()) if mask.any() else float("nan"))
    return {
        "customers": int(len(sample)),
        "bins": bins,
        "segment_shares": shares,  # by centroid position
        "mean_distance": mean_distance,  # by centroid position
        "overall_mean_distance": float(distances.mean()) if len(distances) else float("nan"),
    }


def psi(expected: Sequence[float], actual: Sequence[float], floor: float = 1e-4) -> float:
    """Population stability index, sum((a - e) * ln(a / e)), empty bins floored at ``floor``."""
    if len(expected) != len(actual):
        raise ValueError(f"PSI needs the same bins on both sides, got {len(expected)} and {len(actual)}.")
    total = 0.0
    for e, a in zip(expected, actual):
        e, a = max(float(e), floor), max(float(a), floor)
        total += (a - e) * math.log(a / e)
    return total


def level(value: float, watch: float, retrain: float) -> str:
    """ok / watch / retrain_recommended for one measure and its two thresholds (NaN is ok)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "ok"
    return "retrain_recommended" if value >= retrain else "watch" if value >= watch else "ok"


def drift_status(
    max_psi: float, max_share_shift: float, distance_ratio: float, thresholds: dict[str, Any] | None = None
) -> tuple[str, list[str]]:
    """ok / watch / retrain_recommended, and the reasons (one line per measure above ok).

    Segment share shift and distance ratio say whether the segmentation still fits; each may
    recommend a retrain on its own. Feature PSI alone only asks to watch: recency and tenure move
    with the calendar, so a high PSI recommends a retrain only when the segments moved as well
    (one of the other two measures at least at watch).
    """
    t = {**DEFAULT_THRESHOLDS, **(thresholds or {})}
    psi_level = level(max_psi, float(t["psi_watch"]), float(t["psi_retrain"]))
    share_level = level(max_share_shift, float(t["share_shift_watch"]), float(t["share_shift_retrain"]))
    distance_level = level(
        distance_ratio, float(t["distance_ratio_watch"]), float(t["distance_ratio_retrain"])
    )
    structural = max(share_level, distance_level, key=STATUSES.index)
    if psi_level == "retrain_recommended" and structural != "ok":
        status = "retrain_recommended"
    else:
        status = max(structural, "watch" if psi_level != "ok" else "ok", key=STATUSES.index)
    reasons = []
    for name, value, lvl, key in (
        ("feature PSI", max_psi, psi_level, "psi"),
        ("segment share shift", max_share_shift, share_level, "share_shift"),
        ("mean distance ratio", distance_ratio, distance_level, "distance_ratio"),
    ):
        if lvl != "ok":
            limit = t[f"{key}_retrain"] if lvl == "retrain_recommended" else t[f"{key}_watch"]
            reasons.append(f"{name} {value:.3f} >= {limit} ({lvl})")
    return status, reasons
