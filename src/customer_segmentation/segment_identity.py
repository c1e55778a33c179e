"""Stable segment identity across retrains (KMeans numbers its clusters arbitrarily on each fit).

A new model's clusters are matched to the active model's by member overlap on the training
sample: both models place the same customers, the Jaccard index of every (new, old) pair of
clusters is computed, and the optimal one-to-one assignment (Hungarian algorithm,
``scipy.optimize.linear_sum_assignment``) maximises the total overlap. A matched pair whose
Jaccard index reaches ``min_overlap`` keeps the old SEGMENT_ID and label; every other new cluster
gets a never-used id. Splits (an old cluster spread over several new ones) and merges (a new
cluster drawn from several old ones) are reported.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pandas as pd

from customer_segmentation.model import SegmentationModel


def previous_centroids_in_space(
    previous: SegmentationModel | None, space: SegmentationModel
) -> np.ndarray | None:
    """The previous model's centroids in a new fit's scaled space (None when the transforms differ).

    Both models apply log1p to the same features, then standard-scale with their own means and
    scales: undoing the old scaling and applying the new one puts the centroids in a common space.
    """
    if (
        previous is None
        or list(previous.features) != list(space.features)
        or set(previous.log_features) != set(space.log_features)
    ):
        return None
    unscaled = previous.centroids * previous.scales + previous.means
    return (unscaled - space.means) / space.scales


def contingency(new_positions: np.ndarray, old_positions: np.ndarray, k_new: int, k_old: int) -> np.ndarray:
    """Customers in each (new cluster, old cluster) pair, shape (k_new, k_old)."""
    table = np.zeros((k_new, k_old), dtype=np.int64)
    np.add.at(table, (np.asarray(new_positions, dtype=int), np.asarray(old_positions, dtype=int)), 1)
    return table


def match_clusters(table: np.ndarray, min_overlap: float = 0.3) -> dict[int, int]:
    """Optimal one-to-one new -> old position matching on Jaccard overlap (pairs below the floor dropped)."""
    from scipy.optimize import linear_sum_assignment  # here: importing the pipelines stays light

    new_sizes, old_sizes = table.sum(axis=1), table.sum(axis=0)
    union = new_sizes[:, None] + old_sizes[None, :] - table
    jaccard = np.divide(table, union, out=np.zeros(table.shape, dtype=float), where=union > 0)
    rows, cols = linear_sum_assignment(-jaccard)
    return {int(r): int(c) for r, c in zip(rows, cols) if jaccard[r, c] >= min_overlap}


def splits_and_merges(
    table: np.ndarray, new_ids: list[int], old_ids: list[int], share: float = 0.2
) -> dict[str, list]:
    """Old clusters spread over >= 2 new ones (splits) and new clusters drawn from >= 2 old ones (merges)."""
    old_sizes, new_sizes = table.sum(axis=0), table.sum(axis=1)
    splits, merges = [], []
    for j, old_id in enumerate(old_ids):
        parts = [
            new_ids[i] for i in range(len(new_ids)) if old_sizes[j] and table[i, j] / old_sizes[j] >= share
        ]
        if len(parts) >= 2:
            splits.append({"segment_id": old_id, "into": parts})
    for i, new_id in enumerate(new_ids):
        parts = [
            old_ids[j] for j in range(len(old_ids)) if new_sizes[i] and table[i, j] / new_sizes[i] >= share
        ]
        if len(parts) >= 2:
            merges.append({"segment_id": new_id, "from": parts})
    return {"splits": splits, "merges": merges}


def next_free_id(previous: SegmentationModel | None) -> int:
    """The first id never used by the previous model nor, as far as it recorded, its ancestors."""
    if previous is None:
        return 0
    used = previous.ids()
    recorded = int((getattr(previous, "metrics", None) or {}).get("identity", {}).get("next_segment_id", 0))
    return max([*used, recorded - 1, -1]) + 1


def align_segment_ids(
    model: SegmentationModel,
    previous: SegmentationModel | None,
    sample: pd.DataFrame,
    min_overlap: float = 0.3,
) -> SegmentationModel:
    """The new model with stable ids and labels: matched clusters inherit the previous model's."""
    k = model.k
    if previous is None:
        report = {
            "previous_version": None,
            "matched": [],
            "new_ids": list(range(k)),
            "retired_ids": [],
            "splits": [],
            "merges": [],
            "same_segment_share": None,
            "next_segment_id": k,
        }
        return replace(model, segment_ids=list(range(k)), metrics={**model.metrics, "identity": report})
    missing = [f for f in previous.features if f not in sample.columns]
    next_id = next_free_id(previous)
    if missing:
        ids = list(range(next_id, next_id + k))
        report = {
            "previous_version": previous.version,
            "matched": [],
            "new_ids": ids,
            "retired_ids": previous.ids(),
            "splits": [],
            "merges": [],
            "same_segment_share": 0.0,
            "next_segment_id": next_id + k,
            "note": f"The previous model used other features ({', '.join(missing)}): no cluster could be matched.",
        }
        return replace(model, segment_ids=ids, metrics={**model.metrics, "identity": report})

    new_pos, old_pos = model.predict(sample), previous.predict(sample)
    table = contingency(new_pos, old_pos, k, previous.k)
    matches = match_clusters(table, min_overlap)
    old_ids, old_labels = previous.ids(), list(previous.labels)
    # the classic RFM segment a label names travels with the label (prediction reports faithfulness to it)
    old_bases = list(getattr(previous, "base_labels", ()) or ()) or [
        label.split(" (")[0] for label in old_labels
    ]
    bases = list(getattr(model, "base_labels", ()) or ()) or [label.split(" (")[0] for label in model.labels]
    ids, labels = [], list(model.labels)
    for i in range(k):
        if i in matches:
            ids.append(old_ids[matches[i]])
            labels[i] = old_labels[matches[i]]
            bases[i] = old_bases[matches[i]]
        else:
            ids.append(next_id)
            next_id += 1
    kept_labels = {labels[i] for i in matches}
    for i in range(k):  # a new cluster may not take the name of a kept one
        if i not in matches and labels[i] in kept_labels:
            labels[i] = f"{labels[i]} (segment {ids[i]})"
    same = np.array([ids[p] for p in new_pos]) == np.array([old_ids[p] for p in old_pos])
    same &= np.array([labels[p] for p in new_pos]) == np.array([old_labels[p] for p in old_pos])
    report = {
        "previous_version": previous.version,
        "matched": [{"segment_id": ids[i], "label": labels[i]} for i in sorted(matches)],
        "new_ids": [ids[i] for i in range(k) if i not in matches],
        "retired_ids": [old_ids[j] for j in range(previous.k) if j not in matches.values()],
        **splits_and_merges(table, ids, old_ids),
        "same_segment_share": float(same.mean()) if len(same) else None,
        "next_segment_id": next_id,
    }
    stats = [
        {
            **s,
            "segment_id": ids[i],
            "label": labels[i],
            **({"base_label": bases[i]} if "base_label" in s else {}),
        }
        for i, s in enumerate(model.segment_stats)
    ]
    return replace(
        model,
        segment_ids=ids,
        labels=labels,
        base_labels=bases,
        segment_stats=stats,
        metrics={**model.metrics, "identity": report},
    )
