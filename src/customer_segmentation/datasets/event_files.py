"""Event file loads as a dataset: RAW_DATA appended once per file content, with its LOAD_HISTORY.

Saving an :class:`EventFileLoad` (the rows of one file and what identifies it) appends the rows
to the raw table unless the same content (SHA-256 of the file's bytes) was loaded before. The
dataset keeps its own history table (one row per load attempt):

- ``STATUS = 'loaded'``: the same content was loaded before (under any file name); nothing is
  added.
- ``STATUS = 'loading'``: an earlier attempt stopped between writing the rows and recording its
  success. Its rows are recognised by ``(SOURCE_FILE, LOADED_AT)``: when they are all there the
  load is simply marked done, otherwise the partial rows are removed and the file is loaded again.

Every row written carries ``LOADED_AT`` (one value per load, strictly later than any load stamp
already in the raw table or the history, taken in the statement that records the load as
'loading'; ingestion waits for loads still 'loading', so it never misses one), ``SOURCE_FILE``
(the file's absolute path) and ``SOURCE_ROW`` (1-based position of the event in the file).

Before the first rows of a user's file are written, a raw table holding only the demo is purged
(``demo/purge.py``: derived tables dropped first, demo rows deleted last, so an interrupted purge
is finished by the next load). Loading the same content again never purges anything: the purge
runs only when rows are about to be appended.

``load()`` returns the report of the last save made through this dataset instance (what was
added, or why nothing was), so a node after the save can publish it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from kedro.io.core import DatasetError

from customer_segmentation.clock import now_utc as _now_utc
from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.demo.purge import remove_demo_before_first_load
from customer_segmentation.errors import MissingColumnsError
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

_FILE_INFO_KEYS = ("source_file", "format", "file_sha256")


@dataclass(frozen=True)
class EventFileLoad:
    """What a node hands to :class:`EventFileLoadDataset`: one file's events and their identity.

    ``file_info`` needs ``source_file`` (absolute path), ``format`` and ``file_sha256``; other keys
    are copied into the report. ``demo_derived_tables`` are the tables the demo purge drops
    (``None``: ``demo.purge.DEFAULT_DERIVED_TABLES``).
    """

    events: pd.DataFrame
    file_info: dict[str, Any]
    run_id: str = ""
    demo_derived_tables: Sequence[str] | None = field(default=None)


def stamped(events: pd.DataFrame, source_file: str, loaded_at: datetime) -> pd.DataFrame:
    """The events with their load stamps, in the raw table's column order."""
    frame = events[list(RAW_EVENT_COLUMNS)].copy()
    frame["LOADED_AT"] = pd.Timestamp(loaded_at)
    frame["SOURCE_FILE"] = source_file
    frame["SOURCE_ROW"] = np.arange(1, len(frame) + 1, dtype="int64")
    return frame[list(RAW_COLUMNS)]


class EventFileLoadDataset(SnowparkTableDataset):
    """The raw table (``table_name``) as the target of file loads, with its ``history_table``.

    ``save(EventFileLoad)`` appends once per content hash (see the module docstring);
    ``load()`` returns the report of the last save. Both tables are in the dataset's database and
    schema (the bulk append's temporary stage too).
    """

    def __init__(self, *, history_table: str = "LOAD_HISTORY", **kwargs: Any) -> None:
        kwargs.setdefault("save_args", {"mode": "append"})
        super().__init__(**kwargs)
        self._history_table = validate_identifier(history_table, "table name (history_table)")
        self._last_report: dict[str, Any] | None = None

    @property
    def history_fqn(self) -> str:
        return qualified_name(self._database, self._schema, self._history_table)

    def _describe(self) -> dict[str, Any]:
        return {**super()._describe(), "history_table": self.history_fqn}

    def load(self) -> dict[str, Any]:
        if self._last_report is None:
            raise DatasetError(
                f"No file has been loaded into {self.fqn} by this run yet: the load report exists only after "
                "a save (`kedro run --pipelines load_events --params=events_file=<path>`)."
            )
        return dict(self._last_report)

    def save(self, data: EventFileLoad) -> None:
        if not isinstance(data, EventFileLoad):
            raise DatasetError(
                f"{self.fqn} (event file loads) saves an EventFileLoad (events + file info), not {type(data).__name__}."
            )
        missing = [k for k in _FILE_INFO_KEYS if not data.file_info.get(k)]
        if missing:
            raise DatasetError(f"EventFileLoad.file_info lacks {', '.join(missing)}; nothing was loaded.")
        self._last_report = None
        self._last_report = self._append_once(self.session, data)

    # -- the load protocol ---------------------------------------------------------------------

    def _append_once(self, session: Any, data: EventFileLoad) -> dict[str, Any]:
        events, file_info = data.events, data.file_info
        raw_fqn, history_fqn = self.fqn, self.history_fqn
        if len(events):  # demo and user rows never mix: a first real load removes the demo (demo/purge.py)
            remove_demo_before_first_load(
                session, self._database, self._schema, self._table_name, data.demo_derived_tables
            )
        report: dict[str, Any] = {
            **file_info,
            "raw_table": raw_fqn,
            "history_table": history_fqn,
            "run_id": data.run_id,
            "rows_added": 0,
        }
        self.ensure_tables(session)
        previous = session.sql(
            f"SELECT STATUS, SOURCE_FILE, LOADED_AT, ROW_COUNT FROM {history_fqn} "
            "WHERE FILE_SHA256 = ? AND RAW_TABLE = ? ORDER BY LOADED_AT DESC",
            params=[file_info["file_sha256"], raw_fqn],
        ).collect()
        done = [r for r in previous if r[0] == "loaded"]
        if done:
            report.update(
                status="already_loaded", loaded_at=str(done[0][2]), previously_loaded_from=done[0][1]
            )
            logger.info(
                "%s has the same content (sha256 %s) as %s, loaded into %s at %s: nothing added",
                file_info["source_file"],
                file_info["file_sha256"][:12],
                done[0][1],
                raw_fqn,
                done[0][2],
            )
            return report

        for _status, source_file, loaded_at, row_count in previous:  # interrupted attempts ('loading')
            present = session.sql(
                f"SELECT COUNT(*) FROM {raw_fqn} WHERE SOURCE_FILE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
                params=[source_file, str(loaded_at)],
            ).collect()[0][0]
            if int(present) == int(row_count):
                self.mark_loaded(session, file_info["file_sha256"], loaded_at)
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
            # rows first, history row last: a crash in between leaves a 'loading' row that the next
            # attempt handles again (0 rows present -> deleted, file loaded again)
            session.sql(
                f"DELETE FROM {raw_fqn} WHERE SOURCE_FILE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
                params=[source_file, str(loaded_at)],
            ).collect()
            session.sql(
                f"DELETE FROM {history_fqn} WHERE FILE_SHA256 = ? AND RAW_TABLE = ? "
                "AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
                params=[file_info["file_sha256"], raw_fqn, str(loaded_at)],
            ).collect()

        if len(events) == 0:
            report.update(status="empty", loaded_at=None)
            logger.warning("Events file %s holds no event: nothing added", file_info["source_file"])
            return report

        loaded_at = self.register_load(session, file_info, len(events), data.run_id)
        append_pandas(
            session,
            self._table_name,
            stamped(events, file_info["source_file"], loaded_at),
            self._database,
            self._schema,
        )
        self.mark_loaded(session, file_info["file_sha256"], loaded_at)
        report.update(status="loaded", loaded_at=loaded_at.isoformat(sep=" "), rows_added=len(events))
        return report

    def ensure_tables(self, session: Any) -> None:
        """Create the raw table (contract columns) and the history when missing; refuse a raw table without stamps."""
        columns = table_columns(session, self._database, self._schema, self._table_name)
        if not columns:
            session.sql(
                create_table_sql(self._database, self._schema, self._table_name, RAW_COLUMNS)
            ).collect()
            logger.info("Created %s (RAW_DATA contract columns)", self.fqn)
        else:
            missing = [c for c in RAW_COLUMNS if c not in columns]
            if missing:
                adds = "; ".join(f"ALTER TABLE {self.fqn} ADD COLUMN {c} {RAW_COLUMNS[c]}" for c in missing)
                raise MissingColumnsError(
                    f"Table {self.fqn} lacks column(s) {', '.join(missing)} that load_events writes; nothing was "
                    f"loaded. It has {', '.join(columns)}. Add them ({adds}) or load into an empty warehouse."
                )
        session.sql(
            create_table_sql(self._database, self._schema, self._history_table, LOAD_HISTORY_COLUMNS)
        ).collect()

    def register_load(self, session: Any, file_info: dict[str, Any], row_count: int, run_id: str) -> datetime:
        """Take this load's LOADED_AT and record it as 'loading' in the history, in one statement.

        The stamp is now (UTC, whole seconds), or one second after the latest stamp in the raw
        table *or* the history when that is later: a load that registered but has not written its
        rows yet is already counted. Taking the stamp and registering it in the same
        INSERT ... SELECT (one statement, one snapshot:
        https://docs.snowflake.com/en/sql-reference/transactions) leaves no gap between reading MAX
        and announcing the load. Ingestion never advances its watermark past a load that is still
        'loading' (``ingestion.select_new_events``), so rows that commit after an ingestion read
        are never skipped.
        """
        raw_fqn, history_fqn = self.fqn, self.history_fqn
        now = _now_utc().isoformat(sep=" ")
        session.sql(
            f"INSERT INTO {history_fqn} "
            "(FILE_SHA256, SOURCE_FILE, FILE_FORMAT, RAW_TABLE, ROW_COUNT, LOADED_AT, STATUS, RUN_ID) "
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
            f"SELECT MAX(LOADED_AT) FROM {history_fqn} "
            "WHERE FILE_SHA256 = ? AND RAW_TABLE = ? AND STATUS = 'loading' AND RUN_ID = ?",
            params=[file_info["file_sha256"], raw_fqn, run_id],
        ).collect()
        return rows[0][0]

    def mark_loaded(self, session: Any, sha256: str, loaded_at: Any) -> None:
        """Record the load stamped ``loaded_at`` as complete ('loaded')."""
        session.sql(
            f"UPDATE {self.history_fqn} SET STATUS = 'loaded', FINISHED_AT = CAST(? AS TIMESTAMP_NTZ) "
            "WHERE FILE_SHA256 = ? AND RAW_TABLE = ? AND LOADED_AT = CAST(? AS TIMESTAMP_NTZ)",
            params=[_now_utc().isoformat(sep=" "), sha256, self.fqn, str(loaded_at)],
        ).collect()
