"""Training: bounded sample -> scaling -> KMeans over a k range -> named segments -> saved model."""

from customer_segmentation.pipelines.training.pipeline import create_pipeline

__all__ = ["create_pipeline"]
