"""Export segments: one CSV per segment of a SEGMENT_HISTORY snapshot, to a folder or a stage."""

from customer_segmentation.pipelines.export_segments.pipeline import create_pipeline

__all__ = ["create_pipeline"]
