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
    # The classic RFM segment each label is named after (labels minus their qualifier); a tuple
    # default so that models pickled before this field existed still load (prediction falls back).
    base_labels: list[str] | tuple[str, ...] = ()

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
        return [self.labels[int(i)] for i in segment_ids]
