"""Model versions and run evidence as warehouse tables (the state a fresh container needs).

``SegmentationModelTableDataset`` keeps one row per model version in SEGMENTATION_MODELS, plus
its k-selection rows (MODEL_K_SELECTION) and per-segment rows (MODEL_SEGMENTS). A save writes
the three tables and prunes old versions in ONE transaction: a crash leaves either the previous
state or the new one, never a version without its evidence. Re-saving a version replaces it
(delete + insert by version), so a rerun never duplicates anything.

``EvidenceTableDataset`` appends small pandas frames keyed by some columns (e.g. SEGMENT_SUMMARY
by RUN_ID), replacing rows with the same keys, also in one transaction.

Only Snowflake types and SQL: structured values are JSON text in VARCHAR columns (portable to
the embedded warehouse; ``PARSE_JSON(col)`` reads them in SQL). Small row counts only: rows go
in as one multi-row ``INSERT ... VALUES`` with bound parameters.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd
from kedro.io.core import DatasetError

from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.model import json_safe
from customer_segmentation.warehouse.identifiers import validate_identifier
from customer_segmentation.warehouse.tables import (
    create_table_sql,
    forget_table_columns,
    remember_table_columns,
    sql_type_of,
    table_columns,
    transaction,
)

logger = logging.getLogger(__name__)

#: Timestamps are bound as text with an explicit format (never the session's output format).
TS_FORMAT_SQL = "YYYY-MM-DD HH24:MI:SS.FF6"
TS_FORMAT_PY = "%Y-%m-%d %H:%M:%S.%f"
RECORD_FORMAT = 1
MAX_BINDS_PER_STATEMENT = 5000

#: SEGMENTATION_MODELS: one row per model version. JSON text columns hold lists and documents.
MODEL_COLUMNS: dict[str, str] = {
    "VERSION": "VARCHAR NOT NULL",
    "TRAINED_AT": "TIMESTAMP_NTZ",
    "REGISTERED_AT": "TIMESTAMP_NTZ",
    "RUN_ID": "VARCHAR",
    "STATUS": "VARCHAR",
    "K": "NUMBER(38,0)",
    "FEATURES": "VARCHAR",
    "LOG_FEATURES": "VARCHAR",
    "MEANS": "VARCHAR",
    "SCALES": "VARCHAR",
    "CENTROIDS": "VARCHAR",
    "LABELS": "VARCHAR",
    "DESCRIPTIONS": "VARCHAR",
    "SEGMENT_STATS": "VARCHAR",
    "METRICS": "VARCHAR",
    "EXTRA": "VARCHAR",
    "RECORD_FORMAT": "NUMBER(38,0)",
}
JSON_COLUMNS = (
    "FEATURES",
    "LOG_FEATURES",
    "MEANS",
    "SCALES",
    "CENTROIDS",
    "LABELS",
    "DESCRIPTIONS",
    "SEGMENT_STATS",
    "METRICS",
    "EXTRA",
)
DOCUMENT_COLUMNS = ("SEGMENT_STATS", "METRICS", "EXTRA")
K_SELECTION_COLUMNS: dict[str, str] = {
    "MODEL_VERSION": "VARCHAR NOT NULL",
    "K": "NUMBER(38,0)",
    "INERTIA": "DOUBLE",
    "SILHOUETTE": "DOUBLE",
    "CALINSKI_HARABASZ": "DOUBLE",
    "DAVIES_BOULDIN": "DOUBLE",
    "IS_CHOSEN": "BOOLEAN",
}
SEGMENT_COLUMNS: dict[str, str] = {
    "MODEL_VERSION": "VARCHAR NOT NULL",
    "SEGMENT_ID": "NUMBER(38,0)",
    "LABEL": "VARCHAR",
    "DESCRIPTION": "VARCHAR",
    "CUSTOMERS": "NUMBER(38,0)",
    "CUSTOMER_SHARE": "DOUBLE",
    "REVENUE_SHARE": "DOUBLE",
    "STATS": "VARCHAR",  # the whole per-segment dict as JSON: new fields need no new column
}
#: Newest first: the order "active" and "previous" are defined by.
NEWEST_FIRST = "TRAINED_AT DESC NULLS LAST, REGISTERED_AT DESC NULLS LAST, VERSION DESC"


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _ts_text(value: str | datetime) -> str:
    stamp = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return stamp.replace(tzinfo=None).strftime(TS_FORMAT_PY)


def _iso(value: Any) -> str | None:
    """A timestamp read back as the ISO text ``fit_segmentation_model`` writes (seconds unless finer)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    stamp = pd.Timestamp(value).to_pydatetime()
    return stamp.isoformat(timespec="seconds" if stamp.microsecond == 0 else "microseconds")


def _insert_rows(session: Any, fqn: str, columns: dict[str, str], rows: list[dict[str, Any]]) -> None:
    """Multi-row INSERTs with bound values (for the few rows of a model version or a summary)."""
    if not rows:
        return
    names = list(columns)
    placeholder = (
        "("
        + ", ".join(
            f"TO_TIMESTAMP_NTZ(?, '{TS_FORMAT_SQL}')" if columns[n].startswith("TIMESTAMP") else "?"
            for n in names
        )
        + ")"
    )
    # a few thousand bound values per statement at most (Snowflake caps the size of one statement)
    per_statement = max(1, MAX_BINDS_PER_STATEMENT // len(names))
    for start in range(0, len(rows), per_statement):
        chunk = rows[start : start + per_statement]
        params = [row.get(n) for row in chunk for n in names]
        session.sql(
            f"INSERT INTO {fqn} ({', '.join(names)}) VALUES " + ", ".join([placeholder] * len(chunk)),
            params=params,
        ).collect()


def _delete_in(session: Any, fqn: str, column: str, values: list[Any]) -> None:
    if values:
        marks = ", ".join("?" for _ in values)
        session.sql(f"DELETE FROM {fqn} WHERE {column} IN ({marks})", params=list(values)).collect()


@dataclass(frozen=True)
class VersionWrite:
    """A node's request to store one version in a registry table and prune old ones.

    ``record`` None: nothing to store (the active version was kept). ``keep_versions`` newest
    versions are kept, plus every version in ``protect`` (the pinned one) and the active one
    (newest READY), whatever their age.
    """

    record: dict[str, Any] | None
    run_id: str | None = None
    keep_versions: int = 20
    protect: tuple[str, ...] = field(default_factory=tuple)
    registered_at: str | None = None


@dataclass(frozen=True)
class ModelVersionWrite(VersionWrite):
    """A segmentation model version to store (``record``: ``SegmentationModel.to_record()``)."""


class RegistryTableDataset(SnowparkTableDataset):
    """A table of versions (one row each, newest first by NEWEST_FIRST) with evidence tables keyed by
    version: the registry rules shared by SEGMENTATION_MODELS and CUSTOMER_VALUE_MODELS.

    Subclasses say which tables (``_tables``), which request they save (``write_type``) and how a
    request becomes rows (``_rows``). A save creates missing tables first (DDL outside the
    transaction: it would commit it on Snowflake), then in ONE transaction deletes the version
    everywhere, inserts its rows and prunes old versions (``versions_to_prune``): a crash leaves the
    previous state or the new one, and re-saving a version replaces it.
    """

    write_type: type[VersionWrite] = VersionWrite
    columns: dict[str, str] = {}
    what = "model version"

    def _tables(self) -> list[tuple[str, dict[str, str], str]]:
        """(table name, columns, version column) of every table, the version table last."""
        return [(self._table_name, self.columns, "VERSION")]

    def _rows(self, data: VersionWrite, registered_at: str) -> dict[str, list[dict[str, Any]]]:
        """The rows to insert, by table name (every table of ``_tables``)."""
        raise NotImplementedError

    def _create_tables(self, session: Any) -> None:
        for table, columns, _ in self._tables():
            if not table_columns(session, self._database, self._schema, table):
                session.sql(create_table_sql(self._database, self._schema, table, columns)).collect()
                remember_table_columns(session, self._database, self._schema, table, list(columns))

    def _stored_rows(self) -> list[dict[str, Any]] | None:
        """Every row of the version table, newest first, TRAINED_AT/REGISTERED_AT as ISO text; None
        when the table does not exist yet."""
        session = self.session
        if not table_columns(session, self._database, self._schema, self._table_name):
            return None
        rows = session.sql(
            f"SELECT {', '.join(self.columns)} FROM {self.fqn} ORDER BY {NEWEST_FIRST}"
        ).collect()
        records = []
        for row in rows:
            values = row.as_dict()
            record = {name: values[name] for name in self.columns}
            record["TRAINED_AT"] = _iso(values["TRAINED_AT"])
            record["REGISTERED_AT"] = _iso(values["REGISTERED_AT"])
            records.append(record)
        return records

    def save(self, data: VersionWrite) -> None:
        if not isinstance(data, self.write_type):
            raise DatasetError(
                f"{type(self).__name__} saves a {self.write_type.__name__}, not {type(data).__name__}."
            )
        if data.record is None:
            logger.info("No new %s to store in %s", self.what, self.fqn)
            return
        if int(data.keep_versions) < 1:
            raise DatasetError(f"keep_versions must be at least 1, got {data.keep_versions}.")
        registered = _ts_text(data.registered_at or datetime.now(UTC).replace(tzinfo=None).isoformat())
        rows = self._rows(data, registered)
        version = str(rows[self._table_name][0]["VERSION"])
        session = self.session
        self._create_tables(session)
        tables = [(self._fqn(t), columns, key) for t, columns, key in self._tables()]
        with transaction(session):
            for fqn, _, key in tables:
                _delete_in(session, fqn, key, [version])
            for (table, columns, _), (fqn, _, _) in zip(self._tables(), tables):
                _insert_rows(session, fqn, columns, rows.get(table, []))
            stored = session.sql(f"SELECT VERSION, STATUS FROM {self.fqn} ORDER BY {NEWEST_FIRST}").collect()
            drop = versions_to_prune(
                [(str(r[0]), str(r[1])) for r in stored], int(data.keep_versions), data.protect
            )
            for fqn, _, key in tables:
                _delete_in(session, fqn, key, drop)
        self._log_saved(version, data, drop)

    def _log_saved(self, version: str, data: VersionWrite, drop: list[str]) -> None:
        logger.info(
            "%s %s stored in %s%s",
            self.what[:1].upper() + self.what[1:],
            version,
            self.fqn,
            f"; pruned {len(drop)} old version(s): {', '.join(drop)}" if drop else "",
        )

    def _exists(self) -> bool:
        try:
            return bool(table_columns(self.session, self._database, self._schema, self._table_name))
        except Exception as exc:  # pragma: no cover - exists() must not raise
            logger.debug("Could not check %s: %s", self.fqn, exc)
            return False


class SegmentationModelTableDataset(RegistryTableDataset):
    """Model versions in SEGMENTATION_MODELS (+ MODEL_K_SELECTION, MODEL_SEGMENTS).

    ``save(ModelVersionWrite)`` stores a version; ``load()`` returns every stored version as a
    pandas DataFrame, newest first, one row per version, with ``to_record()`` keys as columns
    (JSON decoded) plus ``registered_at``, ``run_id`` and ``status``. Choosing the version to
    score with is a node's job (``customer_segmentation.model.active_version``).
    """

    write_type = ModelVersionWrite
    columns = MODEL_COLUMNS
    what = "model version"

    def __init__(
        self,
        *,
        table_name: str = "SEGMENTATION_MODELS",
        k_selection_table: str = "MODEL_K_SELECTION",
        segments_table: str = "MODEL_SEGMENTS",
        **kwargs: Any,
    ) -> None:
        super().__init__(table_name=table_name, **kwargs)
        self._k_selection_table = validate_identifier(k_selection_table, "table name")
        self._segments_table = validate_identifier(segments_table, "table name")

    def _describe(self) -> dict[str, Any]:
        return {
            "table": self.fqn,
            "k_selection_table": self._fqn(self._k_selection_table),
            "segments_table": self._fqn(self._segments_table),
        }

    def _tables(self) -> list[tuple[str, dict[str, str], str]]:
        # evidence first, the version table last (pruning deletes the versions' evidence first)
        return [
            (self._k_selection_table, K_SELECTION_COLUMNS, "MODEL_VERSION"),
            (self._segments_table, SEGMENT_COLUMNS, "MODEL_VERSION"),
            (self._table_name, MODEL_COLUMNS, "VERSION"),
        ]

    def load(self) -> pd.DataFrame:
        keys = [c.lower() for c in MODEL_COLUMNS]
        stored = self._stored_rows()
        if stored is None:
            return pd.DataFrame(columns=keys)
        records = []
        for values in stored:
            record = {name.lower(): values[name] for name in MODEL_COLUMNS}
            for name in JSON_COLUMNS:
                text = values[name]
                record[name.lower()] = json.loads(text) if text is not None else None
            record["k"] = int(values["K"]) if values["K"] is not None else None
            records.append(record)
        return pd.DataFrame(records, columns=keys)

    def _rows(self, data: VersionWrite, registered_at: str) -> dict[str, list[dict[str, Any]]]:
        record = data.record or {}
        model_row = {
            "VERSION": str(record["version"]),
            "TRAINED_AT": _ts_text(record["trained_at"]),
            "REGISTERED_AT": registered_at,
            "RUN_ID": data.run_id,
            "STATUS": "READY",
            "K": int(record["k"]),
            "RECORD_FORMAT": RECORD_FORMAT,
            # documents may hold NaN (a metric that does not apply): stored as null, strict JSON;
            # the model's numbers must be finite and are written as they are (to_record checks)
            **{
                name: _json(
                    json_safe(record.get(name.lower()))
                    if name in DOCUMENT_COLUMNS
                    else record.get(name.lower())
                )
                for name in JSON_COLUMNS
            },
        }
        return {
            self._table_name: [model_row],
            self._k_selection_table: k_selection_rows(record),
            self._segments_table: segment_rows(record),
        }

    def _log_saved(self, version: str, data: VersionWrite, drop: list[str]) -> None:
        logger.info(
            "Model version %s stored in %s (k=%s)%s",
            version,
            self.fqn,
            (data.record or {}).get("k"),
            f"; pruned {len(drop)} old version(s): {', '.join(drop)}" if drop else "",
        )


def versions_to_prune(stored: list[tuple[str, str]], keep: int, protect: tuple[str, ...] = ()) -> list[str]:
    """Versions to delete, oldest first: all beyond the ``keep`` newest, except protected and active.

    ``stored`` is (version, status), newest first. The active version (newest READY) and the
    ``protect`` ones (the pinned version) are never deleted.
    """
    ready = [v for v, s in stored if s.upper() == "READY"]
    keep_set = {v for v, _ in stored[:keep]} | set(protect) | set(ready[:1])
    return [v for v, _ in reversed(stored) if v not in keep_set]


def k_selection_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """MODEL_K_SELECTION rows from the record's metrics (one per k tried)."""
    rows = []
    for item in (record.get("metrics") or {}).get("k_selection") or []:
        k = int(item["k"])
        rows.append(
            {
                "MODEL_VERSION": str(record["version"]),
                "K": k,
                **{
                    c: json_safe(item.get(c.lower()))
                    for c in ("INERTIA", "SILHOUETTE", "CALINSKI_HARABASZ", "DAVIES_BOULDIN")
                },
                "IS_CHOSEN": k == int(record["k"]),
            }
        )
    return rows


def segment_rows(record: dict[str, Any]) -> list[dict[str, Any]]:
    """MODEL_SEGMENTS rows: one per segment, with the whole stats dict as JSON."""
    # SEGMENT_ID is the model's stable id of each centroid (kept across retrains, stored in EXTRA
    # as segment_ids); models without stable ids number their segments 0..k-1
    ids = list((record.get("extra") or {}).get("segment_ids") or range(len(record["labels"])))
    stats = {int(s.get("segment_id", i)): s for i, s in enumerate(record.get("segment_stats") or [])}
    rows = []
    for i, label in enumerate(record["labels"]):
        item = json_safe(stats.get(int(ids[i]), {}))
        descriptions = record.get("descriptions") or []
        rows.append(
            {
                "MODEL_VERSION": str(record["version"]),
                "SEGMENT_ID": int(ids[i]),
                "LABEL": str(label),
                "DESCRIPTION": str(descriptions[i]) if i < len(descriptions) else None,
                "CUSTOMERS": int(item["customers"]) if item.get("customers") is not None else None,
                "CUSTOMER_SHARE": item.get("customer_share"),
                "REVENUE_SHARE": item.get("revenue_share"),
                "STATS": _json(item),
            }
        )
    return rows


class EvidenceTableDataset(SnowparkTableDataset):
    """A small pandas frame stored in a table, replacing earlier rows with the same key values.

    ``save_args.key_columns`` (e.g. ``[RUN_ID]``) must be columns of every saved frame. The
    table is created from the first frame's dtypes; later frames with new columns add them
    (``ALTER TABLE ... ADD COLUMN``), so new fields of a summary flow through. Delete + insert
    run in one transaction. ``load()`` returns the table as a Snowpark DataFrame.
    """

    def __init__(self, *, max_rows: int = 2_000, **kwargs: Any) -> None:
        save_args = dict(kwargs.pop("save_args", None) or {})
        self._key_columns = [validate_identifier(k, "key column") for k in save_args.pop("key_columns", [])]
        if not self._key_columns:
            raise DatasetError("EvidenceTableDataset needs save_args.key_columns (e.g. [RUN_ID]).")
        self._max_rows = int(max_rows)
        super().__init__(save_args=save_args, **kwargs)

    def save(self, data: pd.DataFrame) -> None:
        if not isinstance(data, pd.DataFrame):
            raise DatasetError(f"{type(self).__name__} saves a pandas DataFrame, not {type(data).__name__}.")
        if len(data) > self._max_rows:
            raise DatasetError(
                f"{self.fqn} takes small evidence frames (at most {self._max_rows} rows, got {len(data)}); "
                "write large results with a SnowparkTableDataset."
            )
        frame = data.rename(columns=lambda c: validate_identifier(str(c), "column name"))
        missing_keys = [k for k in self._key_columns if k not in frame.columns]
        if missing_keys:
            raise DatasetError(f"The frame for {self.fqn} lacks its key column(s) {', '.join(missing_keys)}.")
        columns = {name: sql_type_of(frame[name]) for name in frame.columns}
        session = self.session
        existing = table_columns(session, self._database, self._schema, self._table_name)
        if not existing:
            session.sql(create_table_sql(self._database, self._schema, self._table_name, columns)).collect()
            remember_table_columns(session, self._database, self._schema, self._table_name, list(columns))
        added = [name for name in columns if existing and name not in existing]
        for name in added:
            session.sql(f"ALTER TABLE {self.fqn} ADD COLUMN {name} {columns[name]}").collect()
        if added:  # the run's cached column list of this table is stale now
            forget_table_columns(session, self._database, self._schema, self._table_name)
        rows = []
        for record in frame.to_dict(orient="records"):
            row = {}
            for name, value in record.items():
                if columns[name] == "TIMESTAMP_NTZ":
                    row[name] = None if pd.isna(value) else pd.Timestamp(value).strftime(TS_FORMAT_PY)
                elif isinstance(value, (dict, list)):
                    row[name] = _json(json_safe(value))
                else:
                    row[name] = json_safe(value)
            rows.append(row)
        keys = frame[self._key_columns].drop_duplicates().to_dict(orient="records")
        with transaction(session):
            for key in keys:
                where = " AND ".join(f"{k} = ?" for k in self._key_columns)
                session.sql(
                    f"DELETE FROM {self.fqn} WHERE {where}",
                    params=[json_safe(key[k]) for k in self._key_columns],
                ).collect()
            _insert_rows(session, self.fqn, columns, rows)
