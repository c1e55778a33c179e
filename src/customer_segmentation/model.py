"""The segmentation model: feature transform, KMeans centroids and segment names, saved together.

Training and prediction share this one definition of the transform (log1p on skewed features,
then standard scaling), so they cannot drift apart. ``predict`` scores pandas rows in Python;
``distance_sql_columns`` compiles the same arithmetic into warehouse expressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd


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

    @property
    def k(self) -> int:
        return int(self.centroids.shape[0])

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Log-transform the skewed features, then standard-scale with the fitted means/scales."""
        values = frame[self.features].astype(float).fillna(0.0).to_numpy(copy=True)
        for j, name in enumerate(self.features):
            if name in self.log_features:
                values[:, j] = np.log1p(np.clip(values[:, j], 0.0, None))
        return (values - self.means) / self.scales

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
