"""Customer value: P(alive), expected purchases, expected order value and CLV per customer (docs/customer-value.md)."""

from customer_segmentation.pipelines.customer_value.pipeline import create_pipeline

__all__ = ["create_pipeline"]
