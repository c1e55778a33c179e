"""Kedro datasets of the project: Snowpark tables on the shared session, and the model artifact."""

from customer_segmentation.datasets.model import SegmentationModelDataset
from customer_segmentation.datasets.snowpark import SnowparkTableDataset, TableWrite

__all__ = ["SegmentationModelDataset", "SnowparkTableDataset", "TableWrite"]
from customer_segmentation.datasets.monitoring import SnapshotWrite, WarehouseTableDataset  # noqa: E402

__all__ += ["SnapshotWrite", "WarehouseTableDataset"]
from customer_segmentation.datasets.model_versions import ActiveModelDataset, PreviousModelDataset  # noqa: E402

__all__ += ["ActiveModelDataset", "PreviousModelDataset"]
from customer_segmentation.datasets.export import SegmentExportDataset  # noqa: E402

__all__ += ["SegmentExportDataset"]
