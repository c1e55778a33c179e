"""Model refresh (daily only): retrain the model when training.retrain_policy says so."""

from customer_segmentation.pipelines.model_refresh.pipeline import create_pipeline

__all__ = ["create_pipeline"]
