"""Simulate days pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.simulate_days.nodes import simulate_demo_days


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                simulate_demo_days,
                inputs=["raw_data", "params:simulate_days", "params:demo_data", "run_metadata"],
                outputs="simulated_events",
                name="simulate_demo_days",
            )
        ]
    )
