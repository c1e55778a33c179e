"""Ingestion: RAW_DATA -> TRANSFORMED_DATA (+ REJECTED_EVENTS), incremental and idempotent."""

from customer_segmentation.pipelines.ingestion.pipeline import create_pipeline

__all__ = ["create_pipeline"]
