"""load_events pipeline: `kedro run --pipelines load_events --params=events_file=<path>`.

Not part of the default run: loading a file is an explicit act. The file is read and checked
here; the catalog dataset ``raw_event_files`` appends it to RAW_DATA once and keeps LOAD_HISTORY.
"""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.load_events.nodes import (
    prepare_event_load,
    read_events_file,
    report_event_load,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                read_events_file,
                inputs=[
                    "params:events_file",
                    "params:load_events",
                    "params:source",
                    "declared_sources",
                    "source_reader",
                ],
                outputs=["events_file_rows", "events_file_info"],
                name="read_events_file",
            ),
            Node(
                prepare_event_load,
                inputs=["events_file_rows", "events_file_info", "run_metadata", "params:demo_data"],
                outputs="raw_event_files",
                name="append_events_to_raw_data",
            ),
            Node(
                report_event_load,
                inputs="raw_event_files",
                outputs="load_events_report",
                name="report_event_load",
            ),
        ]
    )
