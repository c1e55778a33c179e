"""check_source pipeline: validate a declared source against its real columns, preview it, write nothing.

`kedro run --pipelines check_source --params=source=<name>`. Not part of the default run.
"""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.check_source.nodes import check_source


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            Node(
                check_source,
                inputs=[
                    "declared_sources",
                    "params:source",
                    "source_reader",
                    "params:ingestion",
                    "params:check_source",
                ],
                outputs="source_check_report",
                name="check_source",
            ),
        ]
    )
