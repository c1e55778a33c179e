"""The segmentation model: feature transform, KMeans centroids and segment names, saved together.

One class fits and applies the transform (log1p on skewed features, then standard scaling):
``SegmentationModel.learn_transform`` learns the means and scales from the training sample, and
``transform`` is what k selection, fitting, the stability check, drift and ``predict`` all use.
The prediction pipeline compiles the same arithmetic into warehouse expressions
(``pipelines/prediction/nodes.py::scaled_feature_columns``).

A model is stored as a record (``to_record``/``from_record``): plain JSON values, one row of the
SEGMENTATION_MODELS table per version (see docs/model-registry.md). The fitted scikit-learn
estimator is not part of the record: scoring needs only the transform and the centroids.
scikit-learn is imported inside ``kmeans`` only, so scoring never loads it.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import pandas as pd

from customer_segmentation.errors import MissingModelError, UnknownModelVersionError

logger = logging.getLogger(__name__)

#: Record keys stored in their own column of SEGMENTATION_MODELS; any other dataclass field
#: (added later, e.g. by a new naming scheme) travels in ``extra`` so that it needs no new column.
CORE_FIELDS = (
    "version",
    "trained_at",
    "features",
    "log_features",
    "means",
    "scales",
    "centroids",
    "labels",
    "descriptions",
    "segment_stats",
    "metrics",
)
#: Fields never stored: the estimator is a Python object (and a pickle is not portable).
TRANSIENT_FIELDS = ("estimator",)

__all__ = [
    "MissingModelError",
    "kmeans",
    "SegmentationModel",
    "UnknownModelVersionError",
    "active_model_or_none",
    "active_version",
    "json_safe",
    "load_version",
    "previous_version",
    "select_active_model",
]


def json_safe(value: Any) -> Any:
    """``value`` as plain JSON values: numpy scalars/arrays to Python, NaN/inf to None.

    Strict JSON (no NaN literal) so that Snowflake's ``PARSE_JSON`` accepts every stored document.
    """
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [json_safe(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(float(value)) else None
    if isinstance(value, str):
        return value
    if isinstance(value, (pd.Timestamp,)):
        return value.isoformat()
    return str(value)


def _finite_floats(values: Any, what: str) -> list[Any]:
    """A float array as nested lists, refusing NaN/inf (a model with them cannot score)."""
    array = np.asarray(values, dtype=float)
    if not np.isfinite(array).all():
        raise ValueError(
            f"The model's {what} hold NaN or infinite values: it cannot be stored or used to score."
        )
    return array.tolist()  # Python floats: json.dumps writes the shortest text that reads back exactly


def one_openmp_thread() -> Any:
    """A context in which scikit-learn's KMeans (``fit``, ``predict``) runs on one OpenMP thread.

    Training fits KMeans on bounded samples (50k-200k rows, a few features). There, its OpenMP
    threads synchronise at every Lloyd iteration over 256-row chunks, which costs more than it
    saves: 36 k-range fits on 50k rows took 1.6-2.0 s on two threads and 0.65 s on one (the
    training pipeline at 10M events 8.6 -> 6.5-6.9 s, docs/benchmarks.md). One thread also makes
    each fit's sums run in one order on any machine: the k selection and stability scores no
    longer depend on the number of cores (with three or more threads scikit-learn adds the
    threads' partial sums in the order they finish).
    """
    # threadpoolctl limits the runtimes loaded so far: load scikit-learn's OpenMP runtime first
    import sklearn.cluster  # noqa: F401
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1, user_api="openmp")


def kmeans(k: int, n_init: int, random_state: int, init: np.ndarray | None = None) -> Any:
    """An unfitted scikit-learn KMeans (``init``: starting centroids, one run; else k-means++, ``n_init`` runs)."""
    from sklearn.cluster import KMeans  # here, not at module level: scoring must not load scikit-learn

    if init is not None:
        return KMeans(n_clusters=k, init=init, n_init=1, random_state=random_state)
    return KMeans(n_clusters=k, n_init=n_init, random_state=random_state)


def _log_applied(frame: pd.DataFrame, features: list[str], log_features: list[str]) -> np.ndarray:
    """The features as a float matrix (NULL as 0), log1p applied to the skewed ones (negatives as 0)."""
    values = frame[features].astype(float).fillna(0.0).to_numpy(copy=True)
    for j, name in enumerate(features):
        if name in log_features:
            values[:, j] = np.log1p(np.clip(values[:, j], 0.0, None))
    return values


@dataclass
class SegmentationModel:
    """Everything needed to place a customer in a named segment."""

    features: list[str]
    log_features: list[str]
    means: np.ndarray
    scales: np.ndarray
    centroids: np.ndarray  # in the scaled space, shape (k, n_features)
    labels: list[str]
    descriptions: list[str]
    version: str
    trained_at: str
    estimator: Any = None  # the fitted sklearn KMeans (for reference and tests)
    segment_stats: list[dict[str, Any]] = field(default_factory=list)
    metrics: dict[str, Any] = field(default_factory=dict)
    # Stable segment ids, one per centroid (matched to the previous model's at training, see
    # segment_identity.py); None = 0..k-1 (models trained before ids were stable).
    segment_ids: list[int] | None = None
    # Training-time reference for drift monitoring (feature bins and proportions, segment shares,
    # mean distances to the centroid); empty for models trained before it existed.
    drift_reference: dict[str, Any] = field(default_factory=dict)
    # The classic RFM segment each label is named after (labels minus their qualifier); a tuple
    # default so that models pickled before this field existed still load (prediction falls back).
    base_labels: list[str] | tuple[str, ...] = ()

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    @classmethod
    def learn_transform(
        cls, sample: pd.DataFrame, features: list[str], log_features: list[str]
    ) -> SegmentationModel:
        """A model with only its transform learnt from ``sample`` (no segments yet: k = 0).

        The means and population standard deviations of the log-applied features; a constant
        feature gets scale 1 (it then contributes 0 everywhere instead of a division by zero).
        """
        values = _log_applied(sample, list(features), list(log_features))
        scales = values.std(axis=0)
        scales[scales == 0] = 1.0
        return cls(
            features=list(features),
            log_features=list(log_features),
            means=values.mean(axis=0),
            scales=scales,
            centroids=np.empty((0, len(features))),
            labels=[],
            descriptions=[],
            version="",
            trained_at="",
        )

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Log-transform the skewed features, then standard-scale with the fitted means/scales."""
        return (_log_applied(frame, self.features, self.log_features) - self.means) / self.scales

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Nearest-centroid segment id for each row (same result as the KMeans estimator)."""
        scaled = self.transform(frame)
        distances = ((scaled[:, None, :] - self.centroids[None, :, :]) ** 2).sum(axis=2)
        return distances.argmin(axis=1)

    def label_of(self, segment_ids: np.ndarray) -> list[str]:
        """Labels for centroid positions (as returned by ``predict``)."""
        return [self.labels[int(i)] for i in segment_ids]

    def ids(self) -> list[int]:
        """The stable SEGMENT_ID of each centroid, in centroid order."""
        ids = getattr(self, "segment_ids", None)
        return [int(i) for i in ids] if ids is not None else list(range(self.k))

    def segment_id_of(self, positions: np.ndarray) -> np.ndarray:
        """Stable SEGMENT_IDs for centroid positions (as returned by ``predict``)."""
        return np.asarray(self.ids(), dtype="int64")[np.asarray(positions, dtype="int64")]

    def position_of(self, segment_id: int) -> int:
        """Centroid position of a stable SEGMENT_ID (ValueError when the model has no such id)."""
        return self.ids().index(int(segment_id))

    def reference(self) -> dict[str, Any]:
        """The training-time drift reference (empty for older models)."""
        return dict(getattr(self, "drift_reference", None) or {})

    def to_record(self) -> dict[str, Any]:
        """The model as JSON-serialisable values (floats exact), without the sklearn estimator."""
        extra = {
            f.name: json_safe(getattr(self, f.name))
            for f in fields(self)
            if f.name not in CORE_FIELDS and f.name not in TRANSIENT_FIELDS
        }
        return {
            "version": str(self.version),
            "trained_at": str(self.trained_at),
            "k": self.k,
            "features": [str(f) for f in self.features],
            "log_features": [str(f) for f in self.log_features],
            "means": _finite_floats(self.means, "feature means"),
            "scales": _finite_floats(self.scales, "feature scales"),
            "centroids": _finite_floats(self.centroids, "centroids"),
            "labels": [str(label) for label in self.labels],
            "descriptions": [str(d) for d in self.descriptions],
            "segment_stats": json_safe(self.segment_stats),
            "metrics": json_safe(self.metrics),
            "extra": extra,
        }

    @classmethod
    def from_record(cls, record: Mapping[str, Any]) -> SegmentationModel:
        """The model back from ``to_record()`` output (the estimator is not restored: None)."""
        known = {f.name for f in fields(cls)}
        extra = {k: v for k, v in (record.get("extra") or {}).items() if k in known and k not in CORE_FIELDS}
        centroids = np.asarray(record["centroids"], dtype=float)
        features = list(record["features"])
        if (
            centroids.ndim != 2
            or centroids.shape[1] != len(features)
            or len(record["labels"]) != centroids.shape[0]
        ):
            raise ValueError(
                f"Model record {record.get('version')!r} is inconsistent: centroids of shape {centroids.shape} "
                f"for {len(features)} features and {len(record['labels'])} labels."
            )
        return cls(
            features=features,
            log_features=list(record["log_features"]),
            means=np.asarray(record["means"], dtype=float),
            scales=np.asarray(record["scales"], dtype=float),
            centroids=centroids,
            labels=list(record["labels"]),
            descriptions=list(record["descriptions"]),
            version=str(record["version"]),
            trained_at=str(record["trained_at"]),
            segment_stats=list(record.get("segment_stats") or []),
            metrics=dict(record.get("metrics") or {}),
            **extra,
        )


def active_version(versions: pd.DataFrame, pinned: str | None = None) -> str:
    """The version prediction uses: ``pinned`` if set, else the newest READY one.

    ``versions`` is what the SEGMENTATION_MODELS dataset loads: one row per version, newest
    first, with at least ``version`` and ``status``. Raises MissingModelError when there is no
    model and UnknownModelVersionError when ``pinned`` is not stored.
    """
    available = [str(v) for v in versions["version"]] if len(versions) else []
    if pinned not in (None, "") and available:
        if str(pinned) not in available:
            raise UnknownModelVersionError(
                f"prediction.model_version pins {pinned!r}, which is not in the warehouse's model table. "
                f"Available versions (newest first): {', '.join(available) or 'none'}. Set "
                "prediction.model_version to one of them, or to null to use the newest."
            )
        return str(pinned)
    ready = [
        v for v, s in zip(available, versions["status"] if len(versions) else []) if str(s).upper() == "READY"
    ]
    if not ready:
        raise MissingModelError(
            "No trained segmentation model found in the warehouse"
            + (f" (stored versions, none READY: {', '.join(available)})" if available else "")
            + ". Train one first with `kedro run` (all pipelines) or `kedro run --pipelines training`, "
            "then run `kedro run --pipelines prediction` again."
        )
    return ready[0]


def previous_version(versions: pd.DataFrame, version: str) -> str | None:
    """The READY version trained just before ``version`` (None when there is none)."""
    listed = [(str(v), str(s).upper()) for v, s in zip(versions["version"], versions["status"])]
    names = [v for v, _ in listed]
    if version not in names:
        return None
    older = [v for v, s in listed[names.index(version) + 1 :] if s == "READY"]
    return older[0] if older else None


def load_version(versions: pd.DataFrame, version: str) -> SegmentationModel:
    """The stored model ``version`` out of the loaded versions table."""
    rows = versions[versions["version"].astype(str) == str(version)]
    if not len(rows):
        raise UnknownModelVersionError(f"Model version {version!r} is not in the warehouse's model table.")
    return SegmentationModel.from_record(rows.iloc[0].to_dict())


def active_model_or_none(versions: pd.DataFrame, pinned: str | None = None) -> SegmentationModel | None:
    """The active model (``pinned``, else the newest READY), or None when the warehouse holds none yet.

    For the steps that build on the model in use (segment identity, keep-k, the previous-model report, retrain
    policy) and must also work before the first training. A pin that is not stored still raises.
    """
    try:
        return load_version(versions, active_version(versions, pinned))
    except MissingModelError:
        return None


def select_active_model(versions: pd.DataFrame, pinned: str | None = None) -> SegmentationModel:
    """The stored model to score with: ``pinned`` if set, else the newest READY version (logged).

    The one rule prediction, monitoring and the daily retrain decision share (each pipeline's node
    wraps it). Raises MissingModelError / UnknownModelVersionError as ``active_version`` does.
    """
    model = load_version(versions, active_version(versions, pinned))
    logger.info(
        "Scoring with model version %s (trained %s, k=%s)%s",
        model.version,
        model.trained_at,
        model.k,
        " pinned by prediction.model_version" if pinned is not None else ", the newest",
    )
    return model
