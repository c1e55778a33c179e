"""Monitoring: segment history, migrations, activation feed, profiles and drift (after store_results)."""

from customer_segmentation.pipelines.monitoring.pipeline import create_pipeline

__all__ = ["create_pipeline"]
