"""Export segments pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.export_segments.nodes import export_segments


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                export_segments,
                ["segment_history", "params:export_segments"],
                "segment_export",
                name="export_segment_files",
            )
        ]
    )
