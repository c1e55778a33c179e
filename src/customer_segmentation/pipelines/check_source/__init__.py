"""check_source: the dry run of a declared source (`kedro run --pipelines check_source --params=source=<name>`)."""

from customer_segmentation.pipelines.check_source.pipeline import create_pipeline

__all__ = ["create_pipeline"]
