"""Model refresh pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.model_refresh.nodes import (
    refresh_model,
    register_refreshed_model,
    select_current_model,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            # the active model as stored before this run (a retrain below writes segmentation_models)
            Node(
                select_current_model,
                ["segmentation_models_previous", "params:prediction"],
                "current_model",
                name="select_current_model",
            ),
            Node(
                refresh_model,
                inputs=[
                    "customer_features",
                    "current_model",
                    "segment_drift_previous",
                    "params:training",
                    "params:prediction",
                    "run_metadata",
                ],
                outputs="refreshed_model",
                name="refresh_model_if_due",
            ),
            # prediction then scores with the newest READY version: the retrained one, if any
            Node(
                register_refreshed_model,
                ["refreshed_model", "current_model", "params:training", "params:prediction", "run_metadata"],
                "segmentation_models",
                name="register_refreshed_model",
            ),
        ]
    )
