"""Two views of the versioned model file that the monitoring layer needs.

- ``PreviousModelDataset``: the latest saved model, or ``None`` when none exists yet (training
  matches its clusters to the previous model's; the very first training has none).
- ``ActiveModelDataset``: the model the daily job scores with. Saving a model whose ``version``
  is already the latest saved one writes nothing (the daily job re-emits the active model every
  morning and only a retrain adds a version).
"""

from __future__ import annotations

import logging
from typing import Any

from customer_segmentation.datasets.model import SegmentationModelDataset

logger = logging.getLogger(__name__)


class PreviousModelDataset(SegmentationModelDataset):
    """The latest saved model, or None when no model was trained yet."""

    def load(self) -> Any:
        if not self._exists():
            return None
        return super().load()

    def save(self, data: Any) -> None:  # pragma: no cover - read-only by design
        raise NotImplementedError("PreviousModelDataset is read-only; save models through segmentation_model.")


class ActiveModelDataset(SegmentationModelDataset):
    """The model in use; re-saving the latest saved version is a no-op."""


def _save_unless_latest(self: ActiveModelDataset, data: Any) -> None:
    """Save a new model version, or nothing when ``data`` is the latest saved version already."""
    if self._exists():
        latest = SegmentationModelDataset.load(self)
        if getattr(latest, "version", None) == getattr(data, "version", object()):
            logger.info("Model %s is already the latest saved version: nothing to save", data.version)
            return
    SegmentationModelDataset.save(self, data)  # Kedro's versioned save


# Assigned after the class body on purpose: Kedro wraps a subclass's own ``save`` in its versioned
# save logic, which would warn that the (skipped) save version differs from the load version.
ActiveModelDataset.save = _save_unless_latest  # type: ignore[method-assign]
