"""The trained segmentation model as a local, versioned joblib export (the warehouse holds the truth)."""

from __future__ import annotations

from typing import Any

from kedro_datasets.pickle import PickleDataset

from customer_segmentation.model import MissingModelError

__all__ = ["MissingModelError", "SegmentationModelDataset"]


class SegmentationModelDataset(PickleDataset):
    """``PickleDataset`` (joblib backend) that says how to train a model when none is saved."""

    def load(self) -> Any:
        if not self._exists():
            raise MissingModelError(
                f"No trained segmentation model found at {self._filepath}. Train one first with "
                "`kedro run` (all pipelines) or `kedro run --pipelines training`, then run "
                "`kedro run --pipelines prediction` again."
            )
        return super().load()
