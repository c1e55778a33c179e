"""Reporting: the training charts (elbow, silhouette, segment profiles, RFM scatter) as plotly JSON."""

from customer_segmentation.pipelines.reporting.pipeline import create_pipeline

__all__ = ["create_pipeline"]
