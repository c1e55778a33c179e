"""load_events nodes: read one events file, append it to RAW_DATA once (never twice).

A load is identified by the SHA-256 of the file's bytes, recorded in LOAD_HISTORY:

- ``STATUS = 'loaded'``: the same content was loaded before (under any file name); nothing is
  added.
- ``STATUS = 'loading'``: an earlier attempt stopped between writing RAW_DATA and recording its
  success. Its rows are recognised by ``(SOURCE_FILE, LOADED_AT)``: when they are all there the
  load is simply marked done, otherwise the partial rows are removed and the file is loaded again.

Every row written carries ``LOADED_AT`` (one value per load, strictly later than any load stamp
already in RAW_DATA or LOAD_HISTORY, taken in the statement that records the load as 'loading';
ingestion waits for loads still 'loading', so it never misses one), ``SOURCE_FILE`` (the file's
absolute path) and ``SOURCE_ROW`` (1-based position of the event in the file).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from customer_segmentation import warehouse
from customer_segmentation.demo.purge import remove_demo_before_first_load
from customer_segmentation.pipelines.load_events.files import (
    detect_format,
    file_sha256,
    read_events,
    resolve_events_file,
)
from customer_segmentation.warehouse.errors import MissingColumnsError
from customer_segmentation.warehouse.identifiers import qualified_name, validate_identifier
from customer_segmentation.warehouse.tables import (
    RAW_COLUMNS,
    RAW_EVENT_COLUMNS,
    append_pandas,
    create_table_sql,
    table_columns,
)

logger = logging.getLogger(__name__)

#: LOAD_HISTORY: one row per load attempt of a file content into a raw table.
LOAD_HISTORY_COLUMNS: dict[str, str] = {
    "FILE_SHA256": "VARCHAR",
    "SOURCE_FILE": "VARCHAR",
    "FILE_FORMAT": "VARCHAR",
    "RAW_TABLE": "VARCHAR",
    "ROW_COUNT": "NUMBER(38,0)",
    "LOADED_AT": "TIMESTAMP_NTZ",
    "STATUS": "VARCHAR",
    "RUN_ID": "VARCHAR",
    "FINISHED_AT": "TIMESTAMP_NTZ",
}


def _now_utc() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None, microsecond=0)


def read_events_file(events_file: Any, params: dict[str, Any]) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Read and check the whole file (refused as a whole when unreadable or lacking a column)."""
    params = dict(params or {})
    path = resolve_events_file(events_file)
    fmt = detect_format(path, params.get("format"))
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


def _ensure_tables(session: Any, database: str, schema: str, raw_table: str, history_table: str) -> None:
    columns = table_columns(session, database, schema, raw_table)
    if not columns:
        session.sql(create_table_sql(database, schema, raw_table, RAW_COLUMNS)).collect()
        logger.info("Created %s (RAW_DATA contract columns)", qualified_name(database, schema, raw_table))
    else:
        missing = [c for c in RAW_COLUMNS if c not in columns]
        if missing:
            fqn = qualified_name(database, schema, raw_table)
            adds = "; ".join(f"ALTER TABLE {fqn} ADD COLUMN {c} {RAW_COLUMNS[c]}" for c in missing)
            raise MissingColumnsError(
                f"Table {fqn} lacks column(s) {', '.join(missing)} that load_events writes; nothing was loaded. "
                f"It has {', '.join(columns)}. Add them ({adds}) or load into an empty warehouse."
            )
    session.sql(create_table_sql(database, schema, history_table, LOAD_HISTORY_COLUMNS)).collect()


def _register_load(
    session: Any, raw_fqn: str, history_fqn: str, file_info: dict[str, Any], row_count: int, run_id: str
) -> datetime:
    """Take this load's LOADED_AT and record it as 'loading' in LOAD_HISTORY, in one statement.

    The stamp is now (UTC, whole seconds), or one second after the latest stamp in RAW_DATA *or*
    LOAD_HISTORY when that is later: a load that registered but has not written its rows yet is
    already counted. Taking the stamp and registering it in the same INSERT ... SELECT (one
    statement, one snapshot: https://docs.snowflake.com/en/sql-reference/transactions) leaves no
    gap between reading MAX and announcing the load. Ingestion never advances its watermark
    past a load that is still 'loading' (``ingestion.select_new_events``), so rows that commit
    after an ingestion read are never skipped.
    """
    now = _now_utc().isoformat(sep=" ")
    session.sql(
        f"INSERT INTO {history_fqn} (FILE_SHA256, SOURCE_FILE, FILE_FORMAT, RAW_TABLE, ROW_COUNT, LOADED_AT, STATUS, RUN_ID) "
        "SELECT ?, ?, ?, ?, ?, CASE WHEN M IS NULL OR CAST(? AS TIMESTAMP_NTZ) > M THEN CAST(? AS TIMESTAMP_NTZ) "
        "ELSE DATEADD('second', 1, DATE_TRUNC('second', M)) END, 'loading', ? "
        f"FROM (SELECT MAX(S) AS M FROM (SELECT MAX(LOADED_AT) AS S FROM {raw_fqn} "
        f"UNION ALL SELECT MAX(LOADED_AT) AS S FROM {history_fqn}) AS STAMPS) AS LATEST",
        params=[
            file_info["file_sha256"],
            file_info["source_file"],
            file_info["format"],
            raw_fqn,
            row_count,
            now,
            now,
            run_id,
        ],
    ).collect()
    rows = session.sql(
        f"SELECT MAX(LOADED_AT) FROM {history_fqn} WHERE FILE_SHA256 = ? AND RAW_TABLE = ? AND STATUS = 'loading' AND RUN_ID = ?",
        params=[file_info["file_sha256"], raw_fqn, run_id],
    ).collect()
    return rows[0][0]


def _stamped(events: pd.DataFrame, source_file: str, loaded_at: datetime) -> pd.DataFrame:
    frame = events[list(RAW_EVENT_COLUMNS)].copy()
    frame["LOADED_AT"] = pd.Timestamp(loaded_at)
    frame["SOURCE_FILE"] = source_file
    frame["SOURCE_ROW"] = np.arange(1, len(frame) + 1, dtype="int64")
    return frame[list(RAW_COLUMNS)]


def append_events(
    events: pd.DataFrame,
    file_info: dict[str, Any],
    params: dict[str, Any],
    run_metadata: dict[str, Any],
    demo: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Append the file's events to RAW_DATA unless this content was loaded already; the load report."""
    params = dict(params or {})
    session = warehouse.get_session()
    settings = warehouse.current_settings()
    database, schema = settings.database, settings.schema
    raw_table = validate_identifier(params.get("raw_table") or "RAW_DATA", "table name (load_events.raw_table)")
    if len(events):  # demo and user rows never mix: a first real load removes the demo (demo/purge.py)
        remove_demo_before_first_load(
            session, database, schema, raw_table, (demo or {}).get("derived_tables")
        )
    history_table = validate_identifier(
        params.get("history_table") or "LOAD_HISTORY", "table name (load_events.history_table)"
    )
    raw_fqn = qualified_name(database, schema, raw_table)
    history_fqn = qualified_name(database, schema, history_table)
    run_id = str((run_metadata or {}).get("run_id") or "")
    report: dict[str, Any] = {
        **file_info,
        "raw_table": raw_fqn,
        "history_table": history_fqn,
        "run_id": run_id,
        "rows_added": 0,
    }

    _ensure_tables(session, database, schema, raw_table, history_table)
    previous = session.sql(
        f"SELECT STATUS, SOURCE_FILE, LOADED_AT, ROW_COUNT FROM {history_fqn} "
        "WHERE FILE_SHA256 = ? AND RAW_TABLE = ? ORDER BY LOADED_AT DESC",
        params=[file_info["file_sha256"], raw_fqn],
    ).collect()
    done = [r for r in previous if r[0] == "loaded"]
    if done:
        report.update(status="already_loaded", loaded_at=str(done[0][2]), previously_loaded_from=done[0][1])
        logger.info(
            "%s has the same content (sha256 %s) as %s, loaded into %s at %s: nothing added",
            file_info["source_file"],
            file_info["file_sha256"][:12],
            done[0][1],
            raw_fqn,
            done[0][2],
        )
        return report

    for status, source_file, loaded_at, row_count in previous:  # interrupted attempts ('loading')
        present = session.sql(
            f"SELECT COUNT(*) FROM {raw_fqn} WHERE SOURCE_FILE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
            params=[source_file, str(loaded_at)],
        ).collect()[0][0]
        if int(present) == int(row_count):
            _mark_loaded(session, history_fqn, file_info["file_sha256"], raw_fqn, loaded_at)
            report.update(status="recovered", loaded_at=str(loaded_at), rows_added=0)
            logger.warning(
                "An earlier load of %s (at %s) had written its %s rows but not recorded its success: "
                "recorded now, nothing added",
                source_file,
                loaded_at,
                row_count,
            )
            return report
        logger.warning(
            "An earlier load of %s (at %s) stopped after writing %s of %s rows: removing them and loading again",
            source_file,
            loaded_at,
            present,
            row_count,
        )
        session.sql(
            f"DELETE FROM {raw_fqn} WHERE SOURCE_FILE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
            params=[source_file, str(loaded_at)],
        ).collect()
        session.sql(
            f"DELETE FROM {history_fqn} WHERE FILE_SHA256 = ? AND RAW_TABLE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
            params=[file_info["file_sha256"], raw_fqn, str(loaded_at)],
        ).collect()

    if len(events) == 0:
        report.update(status="empty", loaded_at=None)
        logger.warning("Events file %s holds no event: nothing added", file_info["source_file"])
        return report

    loaded_at = _register_load(session, raw_fqn, history_fqn, file_info, len(events), run_id)
    append_pandas(session, raw_table, _stamped(events, file_info["source_file"], loaded_at))
    _mark_loaded(session, history_fqn, file_info["file_sha256"], raw_fqn, loaded_at)
    report.update(status="loaded", loaded_at=loaded_at.isoformat(sep=" "), rows_added=len(events))
    logger.info(
        "Loaded %s events from %s into %s (LOADED_AT %s); run `kedro run --pipeline ingestion` (or `kedro run`) "
        "to ingest them",
        len(events),
        file_info["source_file"],
        raw_fqn,
        report["loaded_at"],
    )
    return report


def _mark_loaded(session: Any, history_fqn: str, sha256: str, raw_fqn: str, loaded_at: Any) -> None:
    session.sql(
        f"UPDATE {history_fqn} SET STATUS = 'loaded', FINISHED_AT = CAST(? AS TIMESTAMP_NTZ) "
        "WHERE FILE_SHA256 = ? AND RAW_TABLE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
        params=[_now_utc().isoformat(sep=" "), sha256, raw_fqn, str(loaded_at)],
    ).collect()
