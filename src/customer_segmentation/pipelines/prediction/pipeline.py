"""Prediction pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.prediction.nodes import plot_segment_sizes, score_customers, summarise_segments


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                score_customers,
                inputs=["customer_features", "segmentation_model", "processed_data_previous"],
                outputs="scored_customers",
                name="score_customers_in_warehouse",
            ),
            Node(summarise_segments, ["scored_customers", "segmentation_model"], "segment_summary",
                 name="summarise_segments"),
            Node(plot_segment_sizes, "segment_summary", "segment_sizes_chart", name="plot_segment_sizes"),
        ]
    )
