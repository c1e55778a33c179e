"""Customer value pipeline definition (in the full run and in the daily run)."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.customer_value.nodes import (
    fit_value_model,
    register_value_model,
    score_customer_value,
    segment_outcomes,
    summarise_customers,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            # x, t_x, T and the mean repeat spend per customer, at the features' reference date (in the warehouse)
            Node(
                summarise_customers,
                ["customer_aggregates", "customer_features"],
                ["customer_value_summary", "customer_value_reference_date"],
                name="summarise_customer_purchases",
            ),
            # the pinned or active version, or a new fit on a bounded sample (+ holdout evidence) when due
            Node(
                fit_value_model,
                [
                    "customer_value_summary",
                    "customer_value_reference_date",
                    "customer_aggregates",
                    "customer_value_models_previous",
                    "segmentation_models",
                    "params:customer_value",
                    "params:training",
                    "params:prediction",
                    "run_metadata",
                ],
                "value_model",
                name="fit_value_model_if_due",
            ),
            Node(
                register_value_model,
                ["value_model", "customer_value_models_previous", "params:customer_value", "run_metadata"],
                "customer_value_models",
                name="register_value_model",
            ),
            Node(
                score_customer_value,
                ["customer_value_summary", "value_model", "params:customer_value"],
                "customer_value",
                name="score_customer_value_in_warehouse",
            ),
            # what past segments realised once a snapshot is holdout_days old (written by an earlier run)
            Node(
                segment_outcomes,
                [
                    "segment_history_previous",
                    "customer_aggregates",
                    "segment_outcomes_previous",
                    "customer_value_reference_date",
                    "params:customer_value",
                ],
                "segment_outcomes",
                name="measure_segment_outcomes",
            ),
        ]
    )
