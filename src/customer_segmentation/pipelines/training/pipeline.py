"""Training pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.training.nodes import (
    align_segment_identity,
    choose_k,
    evaluate_k_range,
    fit_segmentation_model,
    measure_stability,
    plot_elbow,
    plot_rfm_scatter,
    plot_segment_profiles,
    plot_silhouette,
    retain_previous_k,
    sample_customer_features,
    training_metrics,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(sample_customer_features, ["customer_features", "params:training"], "training_sample",
                 name="sample_customer_features"),
            Node(evaluate_k_range, ["training_sample", "params:training"], "k_selection", name="evaluate_k_range"),
            Node(choose_k, ["k_selection", "params:training"], "suggested_k_choice", name="choose_k"),
            Node(retain_previous_k, ["suggested_k_choice", "segmentation_model_previous", "params:training"],
                 "k_choice", name="retain_previous_k"),
            Node(fit_segmentation_model,
                 ["training_sample", "k_choice", "params:training", "run_metadata", "segmentation_model_previous"],
                 "fitted_segmentation_model", name="fit_segmentation_model"),
            Node(align_segment_identity,
                 ["fitted_segmentation_model", "segmentation_model_previous", "training_sample", "params:training"],
                 "segmentation_model", name="align_segment_identity"),
            Node(measure_stability, ["training_sample", "segmentation_model", "params:training"], "stability",
                 name="measure_stability"),
            Node(training_metrics, ["k_selection", "k_choice", "stability", "segmentation_model", "training_sample"],
                 "training_metrics", name="report_training_metrics"),
            Node(plot_elbow, ["k_selection", "k_choice"], "elbow_chart", name="plot_elbow"),
            Node(plot_silhouette, ["k_selection", "k_choice"], "silhouette_chart", name="plot_silhouette"),
            Node(plot_segment_profiles, "segmentation_model", "segment_profiles_chart", name="plot_segment_profiles"),
            Node(plot_rfm_scatter, ["training_sample", "segmentation_model", "params:training"], "rfm_scatter_chart",
                 name="plot_rfm_scatter"),
        ]
    )
