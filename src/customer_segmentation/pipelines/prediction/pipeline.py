"""Prediction pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.prediction.nodes import (
    plot_segment_sizes,
    score_customers,
    segment_summary_rows,
    select_model,
    summarise_segments,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            # the model comes from the warehouse (SEGMENTATION_MODELS), not from a file
            Node(
                select_model,
                ["segmentation_models", "params:prediction"],
                "active_model",
                name="select_model",
            ),
            Node(
                score_customers,
                inputs=["customer_features", "active_model", "processed_data_previous", "customer_value"],
                outputs="scored_customers",
                name="score_customers_in_warehouse",
            ),
            Node(
                summarise_segments,
                ["scored_customers", "active_model"],
                "segment_summary",
                name="summarise_segments",
            ),
            Node(
                segment_summary_rows,
                ["segment_summary", "run_metadata"],
                "segment_summary_history",
                name="record_segment_summary",
            ),
            Node(plot_segment_sizes, "segment_summary", "segment_sizes_chart", name="plot_segment_sizes"),
        ]
    )
