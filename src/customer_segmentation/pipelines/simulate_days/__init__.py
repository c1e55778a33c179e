"""Simulate days: append further days of demo events to RAW_DATA (embedded demo warehouse only)."""

from customer_segmentation.pipelines.simulate_days.pipeline import create_pipeline

__all__ = ["create_pipeline"]
