"""Training pipeline definition (its charts are drawn by the reporting pipeline)."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.training.nodes import (
    align_with_active_model,
    choose_k,
    evaluate_k_range,
    fit_from_active_model,
    measure_stability,
    register_model_version,
    retain_active_k,
    sample_customer_features,
    training_metrics,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                sample_customer_features,
                ["customer_features", "params:training"],
                "training_sample",
                name="sample_customer_features",
            ),
            Node(
                evaluate_k_range,
                ["training_sample", "params:training"],
                "k_selection",
                name="evaluate_k_range",
            ),
            Node(choose_k, ["k_selection", "params:training"], "suggested_k_choice", name="choose_k"),
            # the active model comes from the warehouse (segmentation_models_previous: the versions
            # stored before this run), so segment ids survive fresh containers
            Node(
                retain_active_k,
                [
                    "suggested_k_choice",
                    "segmentation_models_previous",
                    "params:training",
                    "params:prediction",
                ],
                "k_choice",
                name="retain_previous_k",
            ),
            Node(
                fit_from_active_model,
                [
                    "training_sample",
                    "k_choice",
                    "params:training",
                    "run_metadata",
                    "segmentation_models_previous",
                    "params:prediction",
                ],
                "fitted_segmentation_model",
                name="fit_segmentation_model",
            ),
            Node(
                align_with_active_model,
                [
                    "fitted_segmentation_model",
                    "segmentation_models_previous",
                    "training_sample",
                    "params:training",
                    "params:prediction",
                ],
                "segmentation_model",
                name="align_segment_identity",
            ),
            Node(
                measure_stability,
                ["training_sample", "segmentation_model", "params:training"],
                "stability",
                name="measure_stability",
            ),
            Node(
                training_metrics,
                ["k_selection", "k_choice", "stability", "segmentation_model", "training_sample"],
                "training_metrics",
                name="report_training_metrics",
            ),
            Node(
                register_model_version,
                [
                    "segmentation_model",
                    "k_selection",
                    "k_choice",
                    "stability",
                    "training_sample",
                    "params:training",
                    "params:prediction",
                    "run_metadata",
                ],
                "segmentation_models",
                name="register_model_version",
            ),
        ]
    )
