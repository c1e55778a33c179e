"""RFM features: one row per customer, computed in the warehouse."""

from customer_segmentation.pipelines.rfm_features.pipeline import create_pipeline

__all__ = ["create_pipeline"]
