"""Simulate days: append further days of demo events to RAW_DATA (embedded demo warehouse only)."""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from customer_segmentation.pipelines.simulate_days.pipeline import create_pipeline

__all__ = ["create_pipeline"]


def __getattr__(name: str) -> Any:
    """``create_pipeline``, imported on first use (PEP 562).

    The domain modules below the pipelines import this package's ``params``; importing the
    pipeline here, eagerly, would import its nodes, which import those modules back: a cycle
    (``import customer_segmentation.segmentation_training`` in a fresh interpreter failed).
    """
    if name == "create_pipeline":
        from customer_segmentation.pipelines.simulate_days.pipeline import create_pipeline

        return create_pipeline
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
