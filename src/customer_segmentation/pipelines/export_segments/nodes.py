"""One file per segment of a snapshot (customer id, segment, key figures), for a CRM or a reverse ETL."""

from __future__ import annotations

import logging
import re
from datetime import date, datetime

from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation.datasets.export import SegmentExport
from customer_segmentation.pipelines.export_segments.params import ExportSegmentsParams

logger = logging.getLogger(__name__)

EXPORT_COLUMNS = [
    "CUSTOMER_ID",
    "SEGMENT_ID",
    "SEGMENT_LABEL",
    "RFM_SEGMENT",
    "RECENCY_DAYS",
    "FREQUENCY",
    "MONETARY",
    "SNAPSHOT_DATE",
    "MODEL_VERSION",
]


def file_name(segment_id: int, label: str) -> str:
    """``segment_<id>_<slug>.csv``: stable for a segment id and label, safe on every file system."""
    slug = re.sub(r"[^a-z0-9]+", "_", label.lower()).strip("_")[:60] or "segment"
    return f"segment_{int(segment_id):03d}_{slug}.csv"


def export_segments(segment_history: DataFrame, params: ExportSegmentsParams) -> SegmentExport:
    """The rows of each segment of the snapshot (latest unless export_segments.snapshot_date is set)."""
    if params.snapshot_date is not None:
        snapshot = params.snapshot_date
    else:
        latest = segment_history.agg(F.max("SNAPSHOT_DATE").alias("D")).collect()[0][0]
        if latest is None:
            raise ValueError(
                "SEGMENT_HISTORY is empty: run `kedro run` (or the daily pipeline) before exporting."
            )
        snapshot = (
            latest.date()
            if isinstance(latest, datetime)
            else latest
            if isinstance(latest, date)
            else date.fromisoformat(str(latest))
        )
    rows = segment_history.filter(F.col("SNAPSHOT_DATE") == F.lit(snapshot.isoformat()).cast("date"))
    segments = (
        rows.select("SEGMENT_ID", "SEGMENT_LABEL").distinct().sort("SEGMENT_ID", "SEGMENT_LABEL").collect()
    )
    if not segments:
        raise ValueError(
            f"SEGMENT_HISTORY has no snapshot {snapshot}: pick one it holds (or null for the latest)."
        )
    files = {}
    for seg_id, label in segments:
        files[file_name(seg_id, label)] = rows.filter(
            (F.col("SEGMENT_ID") == F.lit(int(seg_id))) & (F.col("SEGMENT_LABEL") == F.lit(label))
        ).select(*EXPORT_COLUMNS)
    logger.info("Exporting %s segment file(s) of snapshot %s", len(files), snapshot)
    return SegmentExport(
        snapshot_date=snapshot.isoformat(),
        files=files,
        folder=params.folder,
        stage=params.stage,
        allow_outside_project=params.allow_outside_project,
    )
