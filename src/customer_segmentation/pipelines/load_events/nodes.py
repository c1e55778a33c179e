"""load_events nodes: read one events file and hand it to the file-load dataset; report the outcome.

The warehouse side (append once per content hash, LOAD_HISTORY, crash recovery, load stamps, the
demo purge before a first user load) is the catalog dataset ``raw_event_files``
(``datasets/event_files.py``): these nodes only read, check and pass data.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import pandas as pd

from customer_segmentation.datasets.event_files import EventFileLoad
from customer_segmentation.datasets.sources import SourceReader
from customer_segmentation.demo.params import DemoDataParams
from customer_segmentation.pipelines.load_events.files import (
    detect_format,
    file_options,
    file_sha256,
    read_events,
    resolve_events_file,
)
from customer_segmentation.pipelines.load_events.params import LoadEventsParams
from customer_segmentation.sources.declarations import SourceDeclarationError, parse_sources, pick_source
from customer_segmentation.sources.pull import file_format, read_source_file

logger = logging.getLogger(__name__)


def read_events_file(
    events_file: Any,
    params: LoadEventsParams,
    source: Any = None,
    declared_sources: dict[str, Any] | None = None,
    source_reader: SourceReader | None = None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read and check the whole file (refused as a whole when unreadable or lacking a column).

    With ``source`` (``--params=source=<name>``), a declared file source: its ``columns:`` mapping
    turns the file's own columns into the contract (in the warehouse, so lookups work), read with
    its options; ``events_file`` then loads another file of the same shape instead of its ``file:``.
    """
    if source is not None and str(source).strip():
        return _read_declared_file(events_file, params, source, declared_sources, source_reader)
    path = resolve_events_file(events_file)
    fmt = detect_format(path, params.format)
    events = read_events(path, fmt, params)
    info = {
        "events_file": str(events_file),
        "source_file": str(path),
        "format": fmt,
        "file_sha256": file_sha256(path),
        "rows_in_file": len(events),
        "ignored_columns": [str(c) for c in events.attrs.get("ignored_columns", [])],
    }
    if info["ignored_columns"]:
        logger.warning(
            "Events file %s: column(s) %s are not part of the RAW_DATA contract and are not loaded",
            path.name,
            ", ".join(info["ignored_columns"]),
        )
    stamps = events.attrs.get("stamp_columns_in_file", [])
    if stamps:
        logger.warning(
            "Events file %s: column(s) %s are set by load_events itself; the file's values are ignored",
            path.name,
            ", ".join(str(s) for s in stamps),
        )
    logger.info("Read %s events from %s (%s, sha256 %s)", len(events), path, fmt, info["file_sha256"][:12])
    return events, info


def _read_declared_file(
    events_file: Any,
    params: LoadEventsParams,
    name: Any,
    declared_sources: dict[str, Any] | None,
    source_reader: SourceReader | None,
) -> tuple[pd.DataFrame, dict[str, Any]]:
    declaration = pick_source(parse_sources(declared_sources or {}), name)
    if declaration.file is None:
        raise SourceDeclarationError(
            f"Source {declaration.name} is a table ({declaration.where}): it is pulled by `kedro run` and "
            "`kedro run --pipelines daily` (check it with --pipelines check_source), not loaded as a file."
        )
    if events_file is not None and str(events_file).strip():
        declaration = replace(declaration, file=resolve_events_file(events_file))
    elif not declaration.file.is_file():
        raise SourceDeclarationError(
            f"Source {declaration.name}: file {declaration.file} does not exist (its `file:` in sources.yml); "
            "fix the path or pass --params=events_file=<path>."
        )
    if source_reader is None:  # pragma: no cover - the pipeline always passes it
        raise SourceDeclarationError(
            "A declared file source is mapped in the warehouse: no source reader given."
        )
    names, columns = read_source_file(declaration, file_options(params))
    events = source_reader.map_file(declaration, names, columns)
    path = declaration.file.resolve()
    info = {
        "events_file": str(path),
        "source_file": str(path),
        "source": declaration.name,
        "format": file_format(declaration),
        "file_sha256": file_sha256(path),
        "rows_in_file": len(events),
        "ignored_columns": [],
    }
    logger.info(
        "Read %s events from %s (source %s, mapped onto the contract; sha256 %s)",
        len(events),
        path,
        declaration.name,
        info["file_sha256"][:12],
    )
    return events, info


def prepare_event_load(
    events: pd.DataFrame,
    file_info: dict[str, Any],
    run_metadata: dict[str, Any],
    demo: DemoDataParams = DemoDataParams(),  # frozen: a shared default is safe
) -> EventFileLoad:
    """The file's events with their identity and run id, for the file-load dataset to append once."""
    return EventFileLoad(
        events=events,
        file_info=dict(file_info),
        run_id=str((run_metadata or {}).get("run_id") or ""),
        demo_derived_tables=demo.derived_tables,
    )


def report_event_load(load_report: dict[str, Any]) -> dict[str, Any]:
    """The load report as saved by the file-load dataset, logged with the next step to take."""
    if load_report.get("status") == "loaded":
        logger.info(
            "Loaded %s events from %s into %s (LOADED_AT %s); run `kedro run --pipelines ingestion` (or `kedro run`) "
            "to ingest them",
            load_report["rows_added"],
            load_report["source_file"],
            load_report["raw_table"],
            load_report["loaded_at"],
        )
    return load_report
