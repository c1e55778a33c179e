"""Store results pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.store_results.nodes import build_processed_data


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                build_processed_data,
                inputs=["scored_customers", "run_metadata"],
                outputs="processed_data",
                name="write_processed_data",
            )
        ]
    )
