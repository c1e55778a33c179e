"""Simulate days pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.simulate_days.nodes import simulate_demo_days


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                simulate_demo_days,
                inputs=[
                    "raw_data",
                    "params:simulate_days",
                    "params:demo_data",
                    "run_metadata",
                    "demo_clock_previous",
                ],
                # saved in this order: the events first, then the clock moved past them
                outputs=["simulated_events", "demo_clock"],
                name="simulate_demo_days",
            )
        ]
    )
