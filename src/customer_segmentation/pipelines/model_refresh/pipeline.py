"""Model refresh pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.model_refresh.nodes import refresh_model


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                refresh_model,
                inputs=["customer_features", "segmentation_model", "segment_drift_previous", "params:training",
                        "run_metadata"],
                outputs="active_segmentation_model",
                name="refresh_model_if_due",
            )
        ]
    )
