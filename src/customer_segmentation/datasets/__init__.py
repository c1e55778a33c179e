"""Kedro datasets of the project: Snowpark tables on the shared session, and model versions and run evidence."""

from customer_segmentation.datasets.customer_aggregates import (
    AggregatesState,
    AggregatesUpdate,
    CustomerAggregates,
    CustomerAggregatesDataset,
)
from customer_segmentation.datasets.demo_clock import DemoClockDataset
from customer_segmentation.datasets.event_files import EventFileLoad, EventFileLoadDataset
from customer_segmentation.datasets.export import SegmentExportDataset
from customer_segmentation.datasets.model import SegmentationModelDataset
from customer_segmentation.datasets.model_table import (
    EvidenceTableDataset,
    ModelVersionWrite,
    SegmentationModelTableDataset,
)
from customer_segmentation.datasets.monitoring import (
    ActivationFeedDataset,
    FeedPublication,
    SnapshotWrite,
    WarehouseTableDataset,
)
from customer_segmentation.datasets.raw_events import RawEventsDataset
from customer_segmentation.datasets.snowpark import REBUILD_MARKER, ScopedMerge, SnowparkTableDataset
from customer_segmentation.datasets.sources import (
    SourcePull,
    SourcePullDataset,
    SourceReader,
    SourceReaderDataset,
)
from customer_segmentation.datasets.value_model_table import ValueModelTableDataset, ValueModelWrite

__all__ = [
    "REBUILD_MARKER",
    "ActivationFeedDataset",
    "AggregatesState",
    "AggregatesUpdate",
    "CustomerAggregates",
    "CustomerAggregatesDataset",
    "DemoClockDataset",
    "EventFileLoad",
    "EventFileLoadDataset",
    "EvidenceTableDataset",
    "FeedPublication",
    "ModelVersionWrite",
    "RawEventsDataset",
    "SegmentExportDataset",
    "SegmentationModelDataset",
    "SegmentationModelTableDataset",
    "ScopedMerge",
    "SnapshotWrite",
    "SnowparkTableDataset",
    "SourcePull",
    "SourcePullDataset",
    "SourceReader",
    "SourceReaderDataset",
    "ValueModelTableDataset",
    "ValueModelWrite",
    "WarehouseTableDataset",
]
