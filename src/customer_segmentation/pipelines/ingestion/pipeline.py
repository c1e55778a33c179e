"""Ingestion pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.demo.seeding import seed_demo_events
from customer_segmentation.pipelines.ingestion.nodes import (
    advance_watermark,
    classify_events,
    find_repeated_event_ids,
    number_repeated_records,
    pull_declared_sources,
    reconcile_ingestion,
    report_source_pulls,
    resolve_duplicates,
    select_new_events,
    split_events,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            # First, the new rows of every declared source (conf/*/sources.yml) land in RAW_DATA.
            Node(
                pull_declared_sources,
                inputs=[
                    "declared_sources",
                    "source_reader",
                    "params:ingestion",
                    "run_metadata",
                    "params:demo_data",
                ],
                outputs="source_pulls",
                name="pull_declared_sources",
            ),
            Node(
                report_source_pulls,
                inputs="source_pulls",
                outputs="source_pull_report",
                name="report_source_pulls",
            ),
            # Then, so that `kedro run` on a brand-new clone has events: seeds only an empty RAW_DATA
            # (after the pulls: a warehouse that got your rows is never seeded).
            Node(
                seed_demo_events,
                inputs=["raw_data_before_seed", "params:demo_data", "run_metadata", "source_pull_report"],
                # saved in this order: the events first, then the clock that dates them
                outputs=["raw_data", "demo_clock"],
                name="seed_demo_events",
            ),
            Node(
                select_new_events,
                inputs=[
                    "raw_data",
                    "ingestion_state_previous",
                    "params:ingestion",
                    "load_history",
                    "demo_clock",
                ],
                outputs=["raw_batch", "batch_info"],
                name="select_new_events",
            ),
            Node(
                find_repeated_event_ids,
                inputs="raw_batch",
                outputs="repeated_event_ids",
                name="find_repeated_event_ids",
            ),
            Node(
                classify_events,
                inputs=[
                    "raw_batch",
                    "transformed_data_previous",
                    "batch_info",
                    "params:ingestion",
                    "repeated_event_ids",
                ],
                outputs="typed_batch",
                name="classify_events",
            ),
            Node(
                number_repeated_records,
                inputs=["typed_batch", "repeated_event_ids"],
                outputs="repeated_records",
                name="number_repeated_records",
            ),
            Node(
                resolve_duplicates,
                inputs=["typed_batch", "repeated_records"],
                outputs="classified_batch",
                name="resolve_duplicates",
            ),
            Node(
                split_events,
                inputs=["classified_batch", "batch_info", "run_metadata", "params:ingestion"],
                outputs=["transformed_data", "rejected_events", "ingestion_batch_counts"],
                name="split_valid_and_rejected_events",
            ),
            Node(
                reconcile_ingestion,
                inputs=[
                    "classified_batch",
                    "raw_data",
                    "transformed_data",
                    "rejected_events",
                    "ingestion_batch_counts",
                ],
                outputs="ingestion_report",
                name="reconcile_ingestion",
            ),
            Node(
                advance_watermark,
                inputs=["transformed_data", "rejected_events", "ingestion_report"],
                outputs="ingestion_state",
                name="advance_ingestion_watermark",
            ),
        ]
    )
