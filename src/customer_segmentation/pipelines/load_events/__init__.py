"""load_events: append a CSV, JSON Lines or Parquet file of events to RAW_DATA, once."""

from customer_segmentation.pipelines.load_events.pipeline import create_pipeline

__all__ = ["create_pipeline"]
