"""Reporting pipeline definition: the training charts, drawn from what training produced."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.reporting.nodes import (
    plot_elbow,
    plot_rfm_scatter,
    plot_segment_profiles,
    plot_silhouette,
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
        ]
    )
