"""Store results: the classified customers written to PROCESSED_DATA."""

from customer_segmentation.pipelines.store_results.pipeline import create_pipeline

__all__ = ["create_pipeline"]
