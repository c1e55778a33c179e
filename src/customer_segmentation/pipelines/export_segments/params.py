"""The ``export_segments`` parameters (conf/base/parameters_monitoring.yml), validated before the run."""

from __future__ import annotations

from datetime import date

from customer_segmentation.parameters import Parameters


class ExportSegmentsParams(Parameters):
    """Where the segment files go and which snapshot they hold."""

    section = "export_segments"

    folder: str | None = None  # None = the catalog's segment_export.default_folder
    allow_outside_project: bool = False
    stage: str | None = None  # Snowflake only: @DB.SCHEMA.STAGE to unload into instead of files
    snapshot_date: date | None = None  # None = the latest snapshot of SEGMENT_HISTORY
