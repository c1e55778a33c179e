"""Monitoring pipeline definition."""

from kedro.pipeline import Node, Pipeline

from customer_segmentation.pipelines.monitoring.nodes import (
    compute_migrations,
    measure_drift,
    migration_flows,
    plot_migration_sankey,
    plot_segment_shares,
    profile_segments,
    segment_changes,
    select_monitored_model,
    snapshot_segments,
)


def create_pipeline(**kwargs) -> Pipeline:
    return Pipeline(
        [
            # drift is measured against the active model in the warehouse (the one prediction scores with)
            Node(
                select_monitored_model,
                ["segmentation_models", "params:prediction"],
                "monitored_model",
                name="select_monitored_model",
            ),
            Node(
                snapshot_segments,
                ["processed_data", "segment_history_previous", "params:monitoring", "customer_value"],
                ["segment_history", "snapshot_info"],
                name="snapshot_segment_history",
            ),
            Node(
                compute_migrations,
                ["segment_history", "snapshot_info"],
                "segment_migrations",
                name="compute_segment_migrations",
            ),
            Node(
                migration_flows,
                ["segment_migrations", "snapshot_info"],
                "segment_flows",
                name="summarise_segment_flows",
            ),
            Node(
                segment_changes,
                ["segment_history", "snapshot_info", "run_metadata"],
                "segment_changes",
                name="build_activation_feed",
            ),
            Node(
                profile_segments,
                ["processed_data", "snapshot_info", "params:monitoring"],
                "segment_profiles",
                name="profile_segments",
            ),
            Node(
                measure_drift,
                ["processed_data", "monitored_model", "snapshot_info", "params:monitoring", "run_metadata"],
                "segment_drift",
                name="measure_drift",
            ),
            Node(
                plot_migration_sankey,
                ["segment_migrations", "snapshot_info"],
                "migration_sankey_chart",
                name="plot_migration_sankey",
            ),
            Node(plot_segment_shares, "segment_history", "segment_shares_chart", name="plot_segment_shares"),
        ]
    )
