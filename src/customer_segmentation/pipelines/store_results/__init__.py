"""Store results: the classified customers written to PROCESSED_DATA."""

from typing import TYPE_CHECKING

from customer_segmentation.pipelines import lazy_create_pipeline

if TYPE_CHECKING:
    from customer_segmentation.pipelines.store_results.pipeline import create_pipeline

__all__ = ["create_pipeline"]

# the pipeline (and its nodes) loads on first use: see lazy_create_pipeline
__getattr__ = lazy_create_pipeline(__name__)
