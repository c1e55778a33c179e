"""Reporting pipeline definition: the training charts and the customer-value holdout charts."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.reporting.nodes import (
    plot_elbow,
    plot_rfm_scatter,
    plot_segment_profiles,
    plot_silhouette,
    plot_value_by_frequency,
    plot_value_tracking,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(plot_elbow, ["k_selection", "k_choice"], "elbow_chart", name="plot_elbow"),
            Node(plot_silhouette, ["k_selection", "k_choice"], "silhouette_chart", name="plot_silhouette"),
            Node(
                plot_segment_profiles,
                "segmentation_model",
                "segment_profiles_chart",
                name="plot_segment_profiles",
            ),
            Node(
                plot_rfm_scatter,
                ["training_sample", "segmentation_model", "params:training"],
                "rfm_scatter_chart",
                name="plot_rfm_scatter",
            ),
            # the customer-value holdout evidence, read back from the registry (CUSTOMER_VALUE_MODELS)
            Node(
                plot_value_tracking,
                ["customer_value_models", "params:customer_value"],
                "value_tracking_chart",
                name="plot_value_tracking",
            ),
            Node(
                plot_value_by_frequency,
                ["customer_value_models", "params:customer_value"],
                "value_by_frequency_chart",
                name="plot_value_by_frequency",
            ),
        ]
    )
