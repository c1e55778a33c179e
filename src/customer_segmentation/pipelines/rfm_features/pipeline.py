"""RFM features pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.rfm_features.nodes import (
    customer_features_from_aggregates,
    plot_rfm_treemap,
    rebuild_customer_aggregates,
    summarise_rfm_segments,
    update_customer_aggregates,
)


def create_pipeline(incremental: bool = False, **kwargs) -> Pipeline:
    """The features pipeline; ``incremental`` (the daily run) updates the aggregates of customers with new events only."""
    return Pipeline(
        [
            # same node name in both variants: a run shows (and the benchmark counts) one step
            Node(
                update_customer_aggregates if incremental else rebuild_customer_aggregates,
                inputs=["transformed_data", "customer_aggregates_previous", "params:rfm_features"],
                outputs="customer_aggregates",
                name="update_customer_aggregates",
            ),
            Node(
                customer_features_from_aggregates,
                inputs=["transformed_data", "customer_aggregates", "params:rfm_features", "demo_clock"],
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
