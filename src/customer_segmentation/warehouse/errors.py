"""Compatibility alias: the error hierarchy lives in ``customer_segmentation.errors``.

Kept so that ``from customer_segmentation.warehouse.errors import ...`` in existing code keeps
working; new code imports ``customer_segmentation.errors`` (every layer may).
"""

from customer_segmentation.errors import (
    EmbeddedWarehouseBusyError,
    InvalidIdentifierError,
    InvalidParametersError,
    MissingColumnsError,
    MissingCredentialsError,
    MissingTableError,
    SegmentationError,
    WarehouseConnectionError,
)

__all__ = [
    "EmbeddedWarehouseBusyError",
    "InvalidIdentifierError",
    "InvalidParametersError",
    "MissingColumnsError",
    "MissingCredentialsError",
    "MissingTableError",
    "SegmentationError",
    "WarehouseConnectionError",
]
