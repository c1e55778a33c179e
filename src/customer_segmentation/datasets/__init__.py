"""Kedro datasets of the project: Snowpark tables on the shared session, and the model artifact."""

from customer_segmentation.datasets.model import SegmentationModelDataset
from customer_segmentation.datasets.raw_events import RawEventsDataset
from customer_segmentation.datasets.snowpark import SnowparkTableDataset, TableWrite

__all__ = ["RawEventsDataset", "SegmentationModelDataset", "SnowparkTableDataset", "TableWrite"]
