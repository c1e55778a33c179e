"""Fitting the segmentation model: k selection, fitting, naming, identity and stability, on the pandas sample.

The domain procedure beside ``model.py`` that the ``training`` pipeline runs as nodes and the daily
job's retrain (``model_refresh``) calls as one step: no pipeline imports another's nodes. The sample
comes from ``segmentation_sample.py``; the transform and KMeans from ``model.py``; the charts are
drawn by the ``reporting`` pipeline. scikit-learn and kneed are imported inside the functions that
use them, so that importing the pipelines (every ``kedro run`` does) stays light.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from customer_segmentation.datasets.model_table import ModelVersionWrite
from customer_segmentation.drift import training_reference
from customer_segmentation.model import SegmentationModel, json_safe, kmeans, one_openmp_thread
from customer_segmentation.pipelines.prediction.params import PredictionParams
from customer_segmentation.pipelines.training.params import TrainingParams
from customer_segmentation.segment_identity import align_segment_ids, previous_centroids_in_space
from customer_segmentation.segment_naming import faithfulness_summary, name_segments

logger = logging.getLogger(__name__)


#: Most fits run at once (bounded: each holds a copy of its sample's labels and distances).
MAX_PARALLEL_FITS = 4


def _one_thread_each(fn: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """``[fn(item) for item in items]``, the items on up to ``os.cpu_count()`` threads, each fit on one OpenMP thread.

    The fits are independent (each its own data and seed) and return in the items' order, so the
    result is the sequential one to the last bit on any number of cores. scikit-learn's Lloyd
    iterations and numpy's array operations release the GIL: on two cores, nine k-range fits take
    about half the time. OpenMP's thread limit belongs to the thread that sets it, so each worker
    sets its own (``one_openmp_thread``). The first exception is raised, as in the loop.
    """

    def one(item: Any) -> Any:
        with one_openmp_thread():
            return fn(item)

    workers = min(len(items), os.cpu_count() or 1, MAX_PARALLEL_FITS)
    if workers <= 1:
        return [one(item) for item in items]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="kmeans") as pool:
        return list(pool.map(one, items))


def _kmeans(k: int, params: TrainingParams) -> Any:
    """An unfitted KMeans with training's n_init and random_state."""
    return kmeans(k, params.n_init, params.random_state)


def _silhouette_reduce(
    sums: np.ndarray, start: int, labels: np.ndarray, freqs: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's ``_silhouette_reduce`` from a chunk's per-cluster distance sums: (intra sums, nearest other mean).

    ``sums[i, c]`` is the sum of row ``start + i``'s distances to the members of cluster ``c``
    (scikit-learn builds it with one ``bincount`` per row; here one matrix product per chunk
    gives all labelings at once: the same sums up to rounding, ~1e-16 relative).
    """
    own = (np.arange(sums.shape[0]), labels[start : start + sums.shape[0]])
    intra = sums[own]
    sums[own] = np.inf
    sums /= freqs
    return intra, sums.min(axis=1)


def _silhouettes(
    scaled: np.ndarray, labelings: list[np.ndarray], sample_size: int, seed: int, chunk_mb: int = 32
) -> list[float]:
    """``silhouette_score`` of each labeling of ``scaled`` on one bounded sample, distances computed once.

    Each value is the one ``silhouette_score(x, labels)`` gives on the sample that
    ``silhouette_score(sample_size=, random_state=seed)`` draws (the same for every labeling):
    the pairwise distances come from the same ``pairwise_distances_chunked`` chunks, computed once
    for every labeling (they were computed once per k), and each chunk's per-cluster sums of every
    labeling come from one matrix product with the labelings' indicator columns (scikit-learn adds
    them with one ``bincount`` per row: 1.3 of the 4.1 s of the k range on a 200k sample; the
    values agree to ~1e-16 relative, not bit for bit). Chunks are capped at
    ``chunk_mb`` (scikit-learn's default working memory, 1 GB, adds ~1 GB of peak RSS on a 10k
    sample). NaN for a labeling with fewer than 2 clusters or more than ``len(sample) - 1`` in the sample.
    """
    import sklearn
    from sklearn.metrics import pairwise_distances_chunked

    indices = np.random.RandomState(seed).permutation(len(scaled))[:sample_size]
    x = scaled[indices]
    scored = []  # (position, encoded labels, cluster sizes, intra chunks, inter chunks)
    for position, labels in enumerate(labelings):
        classes, encoded = np.unique(labels[indices], return_inverse=True)  # LabelEncoder's encoding
        if 2 <= len(classes) <= len(x) - 1:
            scored.append((position, encoded, np.bincount(encoded), [], []))
    if scored:
        with sklearn.config_context(working_memory=chunk_mb):
            start = 0
            # one indicator column per cluster of every labeling: chunk @ members = per-cluster sums
            offsets = np.cumsum([0, *(len(freqs) for _, _, freqs, _, _ in scored)])
            members = np.zeros((len(x), int(offsets[-1])))
            for (_, encoded, _, _, _), offset in zip(scored, offsets[:-1], strict=False):
                members[np.arange(len(x)), offset + encoded] = 1.0
            for chunk in pairwise_distances_chunked(x):
                all_sums = chunk @ members
                for (_, encoded, freqs, intra, inter), offset in zip(scored, offsets[:-1], strict=False):
                    sums = all_sums[:, offset : offset + len(freqs)].copy()
                    a, b = _silhouette_reduce(sums, start, encoded, freqs)
                    intra.append(a)
                    inter.append(b)
                start += chunk.shape[0]
    values = [float("nan")] * len(labelings)
    for position, encoded, freqs, intra_chunks, inter_chunks in scored:
        intra, inter = np.concatenate(intra_chunks), np.concatenate(inter_chunks)
        with np.errstate(divide="ignore", invalid="ignore"):
            intra /= (freqs - 1).take(encoded, mode="clip")
            samples = inter - intra
            samples /= np.maximum(intra, inter)
        values[position] = float(np.mean(np.nan_to_num(samples)))  # NaN (a cluster of one) counts as 0
    return values


def _silhouette(
    scaled: np.ndarray, labels: np.ndarray, sample_size: int, seed: int, chunk_mb: int = 32
) -> float:
    """scikit-learn's silhouette on a bounded sample (``_silhouettes`` of one labeling)."""
    return _silhouettes(scaled, [labels], sample_size, seed, chunk_mb)[0]


def k_selection_rows(sample: pd.DataFrame, params: TrainingParams) -> pd.DataFrame:
    """At most ``k_selection_sample_size`` customers of the sample, drawn with ``random_state``.

    The sample is in CUSTOMER_ID order, which may follow sign-up time: a head would be biased.
    """
    if len(sample) <= params.k_selection_sample_size:
        return sample
    drawn = sample.sample(n=params.k_selection_sample_size, random_state=params.random_state)
    return drawn.sort_index()


def evaluate_k_range(sample: pd.DataFrame, params: TrainingParams) -> pd.DataFrame:
    """Inertia, silhouette (bounded sample), Calinski-Harabasz and Davies-Bouldin for each k.

    The scores come from ``k_selection_rows`` (a bounded random subset), scaled with the whole
    sample's transform.
    """
    from sklearn.metrics import calinski_harabasz_score, davies_bouldin_score

    transform = SegmentationModel.learn_transform(sample, params.features, params.log_features)
    scaled = transform.transform(k_selection_rows(sample, params))
    k_max = min(params.k_max, len(scaled) - 1)
    seed = params.random_state
    silhouette_n = min(params.silhouette_sample_size, len(scaled))

    def evaluate(k: int) -> tuple[dict[str, Any], np.ndarray]:
        model = _kmeans(k, params).fit(scaled)
        labels = model.labels_
        distinct = len(np.unique(labels))
        row = {
            "k": k,
            "inertia": float(model.inertia_),
            "silhouette": float("nan"),  # below: one distance pass for every k
            "calinski_harabasz": float(calinski_harabasz_score(scaled, labels))
            if distinct > 1
            else float("nan"),
            "davies_bouldin": float(davies_bouldin_score(scaled, labels)) if distinct > 1 else float("nan"),
        }
        return row, labels

    evaluated = _one_thread_each(evaluate, list(range(params.k_min, k_max + 1)))
    rows = [row for row, _ in evaluated]
    labelings = [labels for _, labels in evaluated]
    silhouettes = _silhouettes(scaled, labelings, silhouette_n, seed)
    for row, labels, silhouette in zip(rows, labelings, silhouettes, strict=True):
        row["silhouette"] = silhouette if len(np.unique(labels)) > 1 else float("nan")
        logger.info("k=%s inertia=%.1f silhouette=%.3f", row["k"], row["inertia"], row["silhouette"])
    return pd.DataFrame(rows)


def choose_k(k_selection: pd.DataFrame, params: TrainingParams) -> dict[str, Any]:
    """The k to use: the override if set, else kneed's elbow, else the best silhouette."""
    from kneed import KneeLocator

    ks, inertia = k_selection["k"].tolist(), k_selection["inertia"].tolist()
    knee = None
    if len(ks) >= 3:
        knee = KneeLocator(ks, inertia, curve="convex", direction="decreasing").knee
    best = {
        "silhouette": int(k_selection.loc[k_selection["silhouette"].idxmax(), "k"]),
        "calinski_harabasz": int(k_selection.loc[k_selection["calinski_harabasz"].idxmax(), "k"]),
        "davies_bouldin": int(k_selection.loc[k_selection["davies_bouldin"].idxmin(), "k"]),
    }
    if params.k is not None:
        k, source = params.k, "override (training.k)"
    elif knee is not None:
        k, source = int(knee), "elbow (kneed)"
    else:
        k, source = best["silhouette"], "best silhouette (no elbow found)"
    agree = sorted(
        {
            best["silhouette"],
            best["calinski_harabasz"],
            best["davies_bouldin"],
            *([int(knee)] if knee else []),
        }
    )
    note = (
        "All criteria agree."
        if len(agree) == 1
        else f"The criteria disagree (elbow {knee}, silhouette {best['silhouette']}, "
        f"Calinski-Harabasz {best['calinski_harabasz']}, Davies-Bouldin {best['davies_bouldin']}): "
        "the data has no single clear k; the chosen k is a business choice as much as a statistical one."
    )
    logger.info("Chosen k=%s from %s. %s", k, source, note)
    return {"k": k, "source": source, "elbow_k": int(knee) if knee else None, "best_k_by": best, "note": note}


#: Candidates whose inertia is within this relative margin of the best are tied; the first wins
#: (the active model's partition comes first). A settled candidate's inertia is exact for its
#: partition, so a margin this small only joins partitions equally good to the last digits.
INERTIA_TIE = 1e-9


def candidate_seeds(random_state: int, n: int) -> list[int]:
    """The seeds of the ``n`` k-means++ candidates: independent streams derived from ``random_state``.

    Spawned rather than ``random_state + i``, so that two random states share no candidate.
    """
    return [int(s) for s in np.random.SeedSequence(random_state).generate_state(n)]


def nearest_centroid(columns: np.ndarray, centroids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(position, squared distance) of the nearest centroid of each row, computed in a fixed order.

    ``columns`` is the sample transposed (features x rows, contiguous). Distances are summed
    feature by feature with elementwise operations only, so the result does not depend on thread
    counts, SIMD paths or memory alignment; on an exact tie the lower position wins (argmin's rule).
    """
    rows = columns.shape[1]
    best = np.full(rows, np.inf)
    position = np.zeros(rows, dtype=np.int64)
    distance, term = np.empty(rows), np.empty(rows)
    closer = np.empty(rows, dtype=bool)
    for j, centroid in enumerate(centroids):
        distance.fill(0.0)
        for f, value in enumerate(centroid):
            np.subtract(columns[f], value, out=term)
            np.multiply(term, term, out=term)
            np.add(distance, term, out=distance)
        np.less(distance, best, out=closer)
        np.copyto(best, distance, where=closer)
        position[closer] = j
    return position, best


def settle(
    scaled: np.ndarray, centroids: np.ndarray, max_iter: int = 300
) -> tuple[np.ndarray, np.ndarray, float, int]:
    """Lloyd iterations, in a fixed arithmetic order, until the partition no longer changes.

    Returns (centroids, labels, inertia, iterations) with the centroids the exact means of their
    members and every member nearest its own centroid: a fixed point. scikit-learn stops at a
    tolerance on the centroid shift and, with three or more threads, adds the threads' partial
    sums in whatever order they finish; continuing to the fixed point gives the same partition
    and the same centroids to the last bit on every run, and started from a fixed point it
    returns that fixed point unchanged. Stops early, keeping the last complete partition, if a
    cluster would become empty.
    """
    columns = np.ascontiguousarray(scaled.T)
    k, features = centroids.shape
    labels, distances = nearest_centroid(columns, centroids)
    iterations = 0
    for iterations in range(1, max_iter + 1):
        counts = np.bincount(labels, minlength=k)
        if (counts == 0).any():
            break
        means = (
            np.column_stack([np.bincount(labels, weights=columns[f], minlength=k) for f in range(features)])
            / counts[:, None]
        )
        moved, moved_distances = nearest_centroid(columns, means)
        centroids = means
        if np.array_equal(moved, labels):
            distances = moved_distances
            break
        labels, distances = moved, moved_distances
    return centroids, labels, math.fsum(distances), iterations


def _warm_start(
    previous: SegmentationModel | None, space: SegmentationModel, k: int
) -> tuple[np.ndarray | None, str]:
    """The active model's centroids in the new fit's space, as a candidate start (None, and why not).

    On the same sample the transform is the same to the last bit and the centroids are taken as
    stored, so the candidate is the active model's own partition (a settled fixed point); on
    another sample they are mapped (undo the old scaling, apply the new one).
    """
    if previous is None:
        return None, "no active model"
    if previous.k != k:
        return None, f"the active model {previous.version} has k={previous.k}, this fit k={k}"
    same_space = (
        list(previous.features) == list(space.features)
        and set(previous.log_features) == set(space.log_features)
        and np.array_equal(previous.means, space.means)
        and np.array_equal(previous.scales, space.scales)
    )
    init = (
        np.array(previous.centroids, dtype=float)
        if same_space
        else previous_centroids_in_space(previous, space)
    )
    if init is None:
        return None, f"the active model {previous.version} uses other features"
    return init, f"active model {previous.version}"


def _fit_partition(
    scaled: np.ndarray, k: int, params: TrainingParams, warm: tuple[np.ndarray | None, str]
) -> tuple[Any, dict[str, Any]]:
    """The partition of the sample: the best of deterministic candidates, by inertia.

    Candidates: ``n_init`` k-means++ runs from seeds derived from ``random_state``, each settled
    to an exact fixed point (``settle``), and the active model's partition (``warm``) when it is
    itself a solution on this sample: placing the sample with its centroids, then settling, moves
    no customer. That holds for a model fitted on the same sample (a rerun, or a retrain with
    other parameters on unchanged data), and for no arbitrary or outdated set of centroids: such
    a model is reported (how many customers today's data would move) but does not steer the fit.
    The lowest inertia wins; on a tie the first candidate, the active model's. So a rerun on
    unchanged data gives the previous partition again to the last bit, and otherwise the
    partition comes from the data and the parameters. Returns the winning estimator, its
    attributes set to the settled result, and a report.
    """
    columns = np.ascontiguousarray(scaled.T)
    candidates, report_rows = [], []
    init, why = warm
    if init is not None:
        placed, _ = nearest_centroid(columns, init)
        centroids, labels, inertia, iterations = settle(scaled, init)
        moved = int((labels != placed).sum())
        report_rows.append(
            {"start": why, "inertia": inertia, "settle_iterations": iterations, "moved": moved}
        )
        if moved == 0:  # a solution of today's sample: it competes (and wins ties)
            with one_openmp_thread():
                estimator = kmeans(k, 1, params.random_state, init=centroids).fit(scaled)
            candidates.append((why, estimator, centroids, labels, inertia))

    def candidate(seed: int) -> tuple[Any, tuple[np.ndarray, np.ndarray, float, int]]:
        estimator = kmeans(k, 1, seed).fit(scaled)
        return estimator, settle(scaled, estimator.cluster_centers_)

    seeds = candidate_seeds(params.random_state, params.n_init)
    for seed, (estimator, settled) in zip(seeds, _one_thread_each(candidate, seeds), strict=True):
        centroids, labels, inertia, iterations = settled
        name = f"k-means++ seed {seed}"
        report_rows.append({"start": name, "inertia": inertia, "settle_iterations": iterations})
        candidates.append((name, estimator, centroids, labels, inertia))
    lowest = min(c[4] for c in candidates)
    chosen = next(i for i, c in enumerate(candidates) if c[4] <= lowest * (1.0 + INERTIA_TIE))
    name, estimator, centroids, labels, inertia = candidates[chosen]
    estimator.cluster_centers_, estimator.labels_, estimator.inertia_ = centroids, labels, inertia
    report = {
        "chosen": name,
        "inertia": inertia,
        "kept_active_model": init is not None and name == why,
        "active_model": why,
        "candidates": report_rows,
    }
    if init is not None and report_rows[0]["moved"]:
        logger.info(
            "The %s is not a solution on this sample (settling from it moves %s customers): it does not "
            "take part in the fit; its segment ids and labels carry over by matching",
            why,
            f"{report_rows[0]['moved']:,}",
        )
    logger.info(
        "KMeans k=%s: candidates %s; kept %s (lowest inertia; the active model's on a tie)",
        k,
        ", ".join(f"{r['start']}: {r['inertia']:.1f}" for r in report_rows),
        name,
    )
    return estimator, report


def fit_segmentation_model(
    sample: pd.DataFrame,
    k_choice: dict[str, Any],
    params: TrainingParams,
    run_metadata: dict[str, Any],
    previous_model: SegmentationModel | None = None,
) -> SegmentationModel:
    """Fit KMeans with the chosen k and name its segments; the result is saved (versioned).

    The partition is the best of deterministic candidates, the active model's among them
    (``_fit_partition``); its ids and labels are carried over afterwards by
    ``align_segment_identity``.
    """
    space = SegmentationModel.learn_transform(sample, params.features, params.log_features)
    scaled = space.transform(sample)
    k = min(int(k_choice["k"]), len(scaled))
    estimator, partition = _fit_partition(scaled, k, params, _warm_start(previous_model, space, k))
    centroids = estimator.cluster_centers_
    features = space.features
    original = centroids * space.scales + space.means
    profile = pd.DataFrame(original, columns=features)
    for name in space.log_features:
        profile[name] = np.expm1(profile[name])
    assigned = estimator.labels_
    names = name_segments(sample, assigned, k, features, space.log_features)
    labels, descriptions = names.labels, list(names.descriptions)
    revenue = sample["MONETARY"].clip(lower=0).to_numpy()
    total_revenue = revenue.sum() or 1.0
    stats = []
    for i in range(k):
        mask = assigned == i
        share, rev_share = float(mask.mean()), float(revenue[mask].sum() / total_revenue)
        descriptions[i] += f" {share:.0%} of customers, {rev_share:.0%} of net revenue (training sample)."
        stats.append(
            {
                "segment_id": i,
                "label": labels[i],
                "customers": int(mask.sum()),
                "customer_share": share,
                "revenue_share": rev_share,
                "base_label": names.base_labels[i],
                "faithfulness": names.faithfulness[i],  # share of members whose RFM_SEGMENT is base_label
                "rfm_mix": names.rfm_mix[i],
                **{f"median_{f.lower()}": names.medians[i][f] for f in features},
                **{f"mean_{f.lower()}": float(profile.iloc[i][f]) for f in features},
            }
        )
    version = str(run_metadata.get("run_id") or datetime.now(UTC).strftime("%Y-%m-%dT%H.%M.%S.%fZ"))
    model = replace(
        space,
        centroids=centroids,
        labels=labels,
        descriptions=descriptions,
        version=version,
        trained_at=datetime.now(UTC).replace(tzinfo=None).isoformat(timespec="seconds"),
        estimator=estimator,
        segment_stats=stats,
        metrics={
            "k_choice": k_choice,
            "naming": faithfulness_summary(names, np.bincount(assigned, minlength=k)),
            "partition": partition,
        },
        base_labels=names.base_labels,
    )
    # the training-time reference that drift monitoring compares today's customers with
    model.drift_reference = training_reference(sample, model, params.drift_bins)
    for i in range(k):
        logger.info(
            "Segment %s %r (%.0f%% faithful): %s", i, labels[i], 100 * names.faithfulness[i], descriptions[i]
        )
    return model


def retain_previous_k(
    k_choice: dict[str, Any], previous_model: SegmentationModel | None, params: TrainingParams
) -> dict[str, Any]:
    """Keep the previous model's k on a retrain (training.keep_k_on_retrain), unless training.k is set.

    The elbow may move between fits (another random_state, a few more customers); a different k
    splits or merges segments, which no identity matching can hide. Changing k stays possible:
    set training.k, or keep_k_on_retrain: false.
    """
    if previous_model is None or params.k is not None or not params.keep_k_on_retrain:
        return k_choice
    if int(k_choice["k"]) == previous_model.k:
        return k_choice
    logger.info(
        "Keeping k=%s of the previous model %s (the criteria now suggest k=%s; set training.k or "
        "training.keep_k_on_retrain: false to change it)",
        previous_model.k,
        previous_model.version,
        k_choice["k"],
    )
    return {
        **k_choice,
        "k": previous_model.k,
        "suggested_k": int(k_choice["k"]),
        "source": f"kept from the previous model {previous_model.version} (training.keep_k_on_retrain)",
    }


def align_segment_identity(
    model: SegmentationModel,
    previous_model: SegmentationModel | None,
    sample: pd.DataFrame,
    params: TrainingParams,
) -> SegmentationModel:
    """Give the new model's clusters the SEGMENT_IDs and labels of the previous model's they match."""
    aligned = align_segment_ids(model, previous_model, sample, params.identity_min_overlap)
    report = aligned.metrics["identity"]
    logger.info(
        "Segment identity vs %s: kept %s, new %s, retired %s, splits %s, merges %s; %s of the sample keeps its segment",
        report["previous_version"] or "no previous model",
        [m["segment_id"] for m in report["matched"]],
        report["new_ids"],
        report["retired_ids"],
        report["splits"],
        report["merges"],
        "n/a" if report["same_segment_share"] is None else f"{report['same_segment_share']:.1%}",
    )
    return aligned


def measure_stability(
    sample: pd.DataFrame, model: SegmentationModel, params: TrainingParams
) -> dict[str, Any]:
    """Adjusted Rand index between the model and refits on bootstrap samples (same k).

    Bootstraps of ``k_selection_rows`` (a bounded random subset of the sample).
    """
    from sklearn.metrics import adjusted_rand_score

    subsample = k_selection_rows(sample, params)
    scaled = model.transform(subsample)
    reference = model.predict(subsample)
    rng = np.random.default_rng(params.random_state)
    # the bootstrap draws in the order the loop made them, the refits side by side
    draws = [rng.integers(0, len(scaled), size=len(scaled)) for _ in range(params.bootstrap_rounds)]

    def refit_labels(idx: np.ndarray) -> np.ndarray:
        return _kmeans(model.k, params).fit(scaled[idx]).predict(scaled)

    scores = [
        float(adjusted_rand_score(reference, labels)) for labels in _one_thread_each(refit_labels, draws)
    ]
    mean = float(np.mean(scores)) if scores else float("nan")
    verdict = (
        "highly stable"
        if mean > 0.85
        else "stable"
        if mean >= 0.75
        else "doubtful"
        if mean >= 0.6
        else "unstable"
    )
    logger.info(
        "Stability of k=%s: mean ARI %.3f over %s bootstraps (%s)", model.k, mean, len(scores), verdict
    )
    return {
        "ari_mean": mean,
        "ari_min": float(min(scores)) if scores else None,
        "ari_scores": scores,
        "verdict": verdict,
    }


def training_metrics(
    k_selection: pd.DataFrame,
    k_choice: dict[str, Any],
    stability: dict[str, Any],
    model: SegmentationModel,
    sample: pd.DataFrame,
) -> dict[str, Any]:
    """Everything a reviewer needs to judge the model, as JSON."""
    chosen = k_selection[k_selection["k"] == model.k]
    return {
        "model_version": model.version,
        "trained_at": model.trained_at,
        "customers_in_sample": int(len(sample)),
        "k": model.k,
        "k_choice": k_choice,
        "inertia": float(chosen["inertia"].iloc[0]) if len(chosen) else None,
        "silhouette": float(chosen["silhouette"].iloc[0]) if len(chosen) else None,
        "stability": stability,
        "k_selection": k_selection.to_dict(orient="records"),
        "segments": model.segment_stats,
        "naming": model.metrics.get("naming"),
        "features": model.features,
        "log_features": model.log_features,
        "segment_ids": model.ids(),
        "identity": model.metrics.get("identity"),  # matched/new/retired ids, splits and merges
    }


# --- the model version in the warehouse ---------------------------------------------------------


def model_version_write(
    model: SegmentationModel,
    metrics: dict[str, Any],
    params: TrainingParams,
    prediction_params: PredictionParams,
    run_metadata: dict[str, Any],
) -> ModelVersionWrite:
    """The request to store ``model`` (its metrics merged with ``metrics``) and prune old versions."""
    record = model.to_record()
    record["metrics"] = json_safe({**record["metrics"], **metrics})
    pinned = prediction_params.model_version
    return ModelVersionWrite(
        record=record,
        run_id=str(run_metadata.get("run_id") or model.version),
        keep_versions=params.keep_model_versions,
        protect=(pinned,) if pinned is not None else (),
    )
