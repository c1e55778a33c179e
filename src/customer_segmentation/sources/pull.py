"""What a pull of the declared sources reads: one :class:`SourcePull` per source, before landing.

Table sources are read in the warehouse (a lazy Snowpark frame over the watermark range, minus
the event ids the source has landed); file sources are read, mapped and handed over as file
loads (once per content). ``SourcePullDataset`` lands them.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from customer_segmentation.datasets.event_files import EventFileLoad
from customer_segmentation.datasets.sources import SourcePull, SourceReader, pending_rows
from customer_segmentation.sources.declarations import Source, SourceDeclarationError
from customer_segmentation.sources.files import FileOptions, FileReadError, file_sha256, read_columns

logger = logging.getLogger(__name__)

FILE_FORMATS = {
    ".csv": "csv",
    ".gz": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".xlsx": "xlsx",
}


def file_format(source: Source) -> str:
    """The declared format, else the one the file name says."""
    assert source.file is not None
    declared = source.file_options.get("format")
    if declared:
        name = str(declared).lower().lstrip(".")
        return {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(name, name)
    name = source.file.name.lower()
    if name.endswith((".jsonl.gz", ".ndjson.gz", ".json.gz")):
        return "jsonl"
    for ending, fmt in FILE_FORMATS.items():
        if name.endswith(ending):
            return fmt
    raise SourceDeclarationError(
        f"sources.yml: {source.name}: cannot tell the format of {source.file.name!r}; add `format: csv` "
        "(or jsonl, parquet, xlsx)."
    )


def file_options(source: Source, defaults: FileOptions | None = None) -> FileOptions:
    """The declaration's reading options (missing ones from ``defaults``)."""
    base = defaults or FileOptions()
    options = source.file_options
    return FileOptions(
        delimiter=options.get("delimiter", base.delimiter),
        encoding=str(options.get("encoding", base.encoding)),
        decimal=options.get("decimal", base.decimal),
        sheet=options.get("sheet", base.sheet),
        setting=f"`{{option}}: ...` in the {source.name} entry of sources.yml".replace(
            "csv_delimiter", "delimiter"
        ),
    )


def read_source_file(
    source: Source, defaults: FileOptions | None = None
) -> tuple[list[str], dict[str, list[Any]]]:
    """A file source's columns as written (its declared options), with a clear error when unreadable."""
    assert source.file is not None
    fmt = file_format(source)
    try:
        return read_columns(source.file, fmt, file_options(source, defaults))
    except FileReadError as exc:
        raise SourceDeclarationError(f"sources.yml: {source.name}: {exc}") from None
    except Exception as exc:  # every parser raises its own kind
        raise SourceDeclarationError(
            f"sources.yml: {source.name}: could not read {source.file} as {fmt}: {type(exc).__name__}: {exc}"
        ) from None


def plan_table_pull(reader: SourceReader, source: Source, info: dict[str, Any]) -> SourcePull:
    """A table source's rows in its watermark range, and those not landed yet (counted, not moved)."""
    mapped = reader.mapped(source)
    watermark = reader.watermark(source)
    in_range, new, high = pending_rows(reader, mapped, watermark)
    rows_read = int(in_range.count())
    rows_new = int(new.count()) if rows_read else 0
    return SourcePull(
        source=source,
        frame=new,
        rows_read=rows_read,
        rows_new=rows_new,
        watermark_from=watermark,
        watermark_to=high if high is not None else watermark,
        info=info,
    )


def plan_file_pull(reader: SourceReader, source: Source, info: dict[str, Any], run_id: str) -> SourcePull:
    """A file source read, mapped (in the warehouse) and handed over as one file load."""
    assert source.file is not None
    if not source.file.is_file():
        logger.warning(
            "Source %s: file %s is not there; skipped (declare it again or load it with load_events)",
            source.name,
            source.file,
        )
        return SourcePull(source=source, skipped=f"file {source.file} not found", info=info)
    names, columns = read_source_file(source)
    events = reader.map_file(source, names, columns)
    file_info = {
        "source_file": str(source.file.resolve()),
        "format": file_format(source),
        "file_sha256": file_sha256(source.file),
        "rows_in_file": len(events),
    }
    load = EventFileLoad(
        events=events, file_info=file_info, run_id=run_id, demo_derived_tables=info.get("demo_derived_tables")
    )
    return SourcePull(source=source, file_load=load, rows_read=len(events), rows_new=len(events), info=info)


def plan_pulls(
    reader: SourceReader,
    sources: dict[str, Source],
    run_id: str,
    demo_derived_tables: Sequence[str] | None = None,
) -> list[SourcePull]:
    """One pull per declared source, in declaration order."""
    pulls = []
    for source in sources.values():
        info = {"run_id": run_id, "demo_derived_tables": list(demo_derived_tables or []) or None}
        if source.table is not None:
            pulls.append(plan_table_pull(reader, source, info))
        else:
            pulls.append(plan_file_pull(reader, source, info, run_id))
    return pulls
