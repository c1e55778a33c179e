"""Prediction: every customer placed in a segment, inside the warehouse, with the saved model."""

from customer_segmentation.pipelines.prediction.pipeline import create_pipeline

__all__ = ["create_pipeline"]
