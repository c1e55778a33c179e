"""check_source node: what a pull of one declared source would read, land and have rejected, and why.

Reads only: the source (and its lookups) in the warehouse, the watermark, the ids already landed.
A file source is staged in a temporary table of the run's session for the mapping (dropped at
the end). The report is logged and saved (``source_check_report``).
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from customer_segmentation.clock import now_utc as _now_utc
from customer_segmentation.datasets.sources import SourceReader, encode_watermark, pending_rows
from customer_segmentation.pipelines.check_source.params import CheckSourceParams
from customer_segmentation.pipelines.ingestion.params import IngestionParams
from customer_segmentation.sources.check import describe_checks
from customer_segmentation.sources.declarations import parse_sources, pick_source
from customer_segmentation.sources.pull import read_source_file

logger = logging.getLogger(__name__)


def check_source(
    declared_sources: dict[str, Any],
    source: Any,
    source_reader: SourceReader,
    ingestion: IngestionParams,
    params: CheckSourceParams,
) -> dict[str, Any]:
    """Validate the source's mapping against its real columns, preview mapped rows and would-be rejections."""
    ingestion = IngestionParams.of(ingestion)
    params = CheckSourceParams.of(params)
    declaration = pick_source(parse_sources(declared_sources), source)
    future_limit = (ingestion.as_of or _now_utc()) + timedelta(hours=ingestion.future_tolerance_hours)
    staged = None
    try:
        if declaration.table is not None:
            mapped = source_reader.mapped(declaration)
            watermark = source_reader.watermark(declaration)
        else:
            names, columns = read_source_file(declaration)
            mapped, staged = source_reader.mapped_file(declaration, names, columns)
            watermark = None
        in_range, new, high = pending_rows(source_reader, mapped, watermark)
        report = describe_checks(
            mapped,
            in_range,
            new,
            ingestion,
            future_limit,
            preview_rows=params.preview_rows,
            examples=params.rejected_examples,
        )
    finally:
        if staged is not None:
            source_reader.drop_staged(staged)
    report.update(
        source=declaration.name,
        where=declaration.where,
        expressions=(declared_sources or {}).get(declaration.name, {}).get("columns"),
        incremental_by=declaration.incremental_by,
        watermark=None if watermark is None else encode_watermark(watermark)[0],
        watermark_to=None if high is None else encode_watermark(high)[0],
        wrote="nothing",
    )
    logger.info("%s", render(report))
    return report


def render(report: dict[str, Any]) -> str:
    """The report as the text a person reads in the log."""
    lines = [
        f"Dry run of source {report['source']} ({report['where']}): nothing was written.",
        "Columns: " + ", ".join(f"{c['name']} {c['type']}" for c in report["columns"]),
    ]
    if report.get("incremental_by"):
        reach = (
            f"this pull would read up to {report['watermark_to']}"
            if report["rows_read"]
            else "nothing new after it"
        )
        lines.append(
            f"Incremental by {report['incremental_by']}: watermark {report['watermark'] or 'none (first pull)'}; {reach}."
        )
    lines.append(
        f"A pull would read {report['rows_read']:,} rows and land {report['rows_new']:,} new events; ingestion would "
        f"accept {report['would_accept']:,} and reject {report['would_reject']:,} ({report['rejection_rate']:.2%}"
        f", limit {report['max_rejection_rate']:.2%}){' and STOP: above the limit' if report['would_stop'] else ''}."
    )
    for reason, count in report["rejected_by_reason"].items():
        lines.append(f"  {reason}: {count:,}, e.g. {report['rejected_examples'].get(reason, [])[:1]}")
    for note in report["notes"]:
        lines.append(f"Note: {note}")
    lines.append(f"First {len(report['preview'])} mapped rows:")
    lines.extend(f"  {row}" for row in report["preview"])
    return "\n".join(lines)
