"""load_events pipeline: `kedro run --pipeline load_events --params=events_file=<path>`.

Not part of the default run: loading a file is an explicit act.
"""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.load_events.nodes import append_events, read_events_file


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                read_events_file,
                inputs=["params:events_file", "params:load_events"],
                outputs=["events_file_rows", "events_file_info"],
                name="read_events_file",
            ),
            Node(
                append_events,
                inputs=[
                    "events_file_rows",
                    "events_file_info",
                    "params:load_events",
                    "run_metadata",
                    "params:demo_data",
                ],
                outputs="load_events_report",
                name="append_events_to_raw_data",
            ),
        ]
    )
