"""Two views of the versioned model file that the monitoring layer needs.

- ``PreviousModelDataset``: the latest saved model, or ``None`` when none exists yet (training
  matches its clusters to the previous model's; the very first training has none).
- ``ActiveModelDataset``: the model the daily job scores with. Saving a model whose ``version``
  is already the latest saved one writes nothing (the daily job re-emits the active model every
  morning and only a retrain adds a version).
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

from customer_segmentation.datasets.model import SegmentationModelDataset

logger = logging.getLogger(__name__)

# Kedro warns when a versioned dataset's save and load versions differ, which is the design here
# (the save of an unchanged model is skipped, so the latest version stays the loaded one).
warnings.filterwarnings("ignore", message=r"(?s).*ActiveModelDataset")


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

    def save(self, data: Any) -> None:
        if self._exists():
            latest = super().load()
            if getattr(latest, "version", None) == getattr(data, "version", object()):
                logger.info("Model %s is already the latest saved version: nothing to save", data.version)
                return
        super().save(data)
