"""RFM features pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.rfm_features.nodes import (
    compute_customer_features,
    plot_rfm_treemap,
    summarise_rfm_segments,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                compute_customer_features,
                inputs=["transformed_data", "params:rfm_features"],
                outputs="customer_features",
                name="compute_customer_features",
            ),
            Node(
                summarise_rfm_segments,
                inputs="customer_features",
                outputs="rfm_segment_summary",
                name="summarise_rfm_segments",
            ),
            Node(
                plot_rfm_treemap,
                inputs="rfm_segment_summary",
                outputs="rfm_segment_treemap",
                name="plot_rfm_treemap",
            ),
        ]
    )
