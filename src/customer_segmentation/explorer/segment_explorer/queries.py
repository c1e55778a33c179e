"""Read-only queries of the segment explorer: aggregates computed in the warehouse, bounded rows out.

Imports only Snowpark-free standard modules and pandas (the session is passed in), so this file
runs unchanged in Streamlit in Snowflake. Every function takes the Snowpark session and the
``Catalog`` (which tables and columns exist), and returns a small pandas DataFrame or dict.

Text a user typed or chose (customer ids, segment labels, dates, numbers) reaches SQL only as a
bound parameter (``?``); identifiers (tables, columns, sort keys) come from fixed lists or from
the warehouse's INFORMATION_SCHEMA and are checked by ``identifier()`` before they are written
into SQL. Every query that can return many rows has a LIMIT.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import pandas as pd

# --- tables the app reads (the project's catalog names them; the app never writes) -----------------

MODELS = "SEGMENTATION_MODELS"
K_SELECTION = "MODEL_K_SELECTION"
MODEL_SEGMENTS = "MODEL_SEGMENTS"
SUMMARY = "SEGMENT_SUMMARY"
PROCESSED = "PROCESSED_DATA"
HISTORY = "SEGMENT_HISTORY"
MIGRATIONS = "SEGMENT_MIGRATIONS"
FLOWS = "SEGMENT_FLOWS"
CHANGES = "SEGMENT_CHANGES"
PROFILES = "SEGMENT_PROFILES"
DRIFT = "SEGMENT_DRIFT"
TRANSFORMED = "TRANSFORMED_DATA"
# the customer-value tables (CONTRACT with the value pipeline; absent on older warehouses)
VALUE = "CUSTOMER_VALUE"
VALUE_MODELS = "CUSTOMER_VALUE_MODELS"
OUTCOMES = "SEGMENT_OUTCOMES"
TABLES = (
    MODELS,
    K_SELECTION,
    MODEL_SEGMENTS,
    SUMMARY,
    PROCESSED,
    HISTORY,
    MIGRATIONS,
    FLOWS,
    CHANGES,
    PROFILES,
    DRIFT,
    TRANSFORMED,
    VALUE,
    VALUE_MODELS,
    OUTCOMES,
)

# --- what to tell the user when something is not there yet -------------------------------------------

NO_MODEL = "No model yet: run `kedro run` (it trains a model and segments every customer)."
NO_SEGMENTS = (
    "No segments yet: run `kedro run` (the monitoring pipeline writes SEGMENT_PROFILES and the history)."
)
NO_VALUE = "No customer value yet: run `kedro run` (the customer-value pipeline adds P(alive) and CLV)."
NO_VALUE_MODEL = (
    "No customer value model yet: run `kedro run` (the customer-value pipeline stores its holdout report)."
)
ONE_SNAPSHOT = (
    "One snapshot only ({snapshot}): run `kedro run --pipelines daily` tomorrow for movements "
    "between snapshots."
)

#: The value columns (contract with the value pipeline), in display order.
VALUE_COLUMNS = ("P_ALIVE", "EXPECTED_PURCHASES", "EXPECTED_ORDER_VALUE", "CLV")
SEGMENT_VALUE_COLUMNS = ("MEDIAN_P_ALIVE", "TOTAL_CLV", "MEDIAN_CLV", "EXPECTED_REVENUE_SHARE")
#: Numeric columns of PROCESSED_DATA that are not customer features (left out of the contrast).
NOT_FEATURES = {"SEGMENT_ID", "R_SCORE", "F_SCORE", "M_SCORE", "DISTANCE_TO_CENTROID"}
ORDER_EVENTS = ("ORDER_CREATED", "ORDER_CANCELLED", "ORDER_RETURNED")
NUMERIC_TYPES = {"NUMBER", "FLOAT", "DECIMAL", "NUMERIC", "INT", "INTEGER", "BIGINT", "DOUBLE", "REAL"}


class ExplorerError(Exception):
    """A problem the page explains as it is (what is wrong and what to do), never with a traceback."""


class EmptyState(ExplorerError):
    """The data is not there yet; the message names the command that makes it."""


_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_$]{0,254}$")


def identifier(value: object, what: str = "identifier") -> str:
    """``value`` upper-cased if it is a plain Snowflake identifier (letters, digits, _ and $), else raise."""
    if not isinstance(value, str) or not _IDENTIFIER.match(value):
        raise ExplorerError(
            f"Invalid {what} {str(value)[:80]!r}: use letters, digits, '_' or '$', starting with a letter or '_'."
        )
    return value.upper()


def parse_location(text: str) -> tuple[str, str]:
    """``DATABASE.SCHEMA`` (SEGMENT_EXPLORER_SCHEMA) as two checked identifiers."""
    parts = str(text).split(".")
    if len(parts) != 2:
        raise ExplorerError(
            f"SEGMENT_EXPLORER_SCHEMA must be DATABASE.SCHEMA (e.g. RETAIL.SEGMENTATION), got {text[:80]!r}."
        )
    return identifier(parts[0], "database name"), identifier(parts[1], "schema name")


def _rows(session: Any, sql: str, params: list[Any] | None = None) -> pd.DataFrame:
    """A query's (bounded) result as pandas, with bound parameters."""
    frame = session.sql(sql, params=params).to_pandas() if params else session.sql(sql).to_pandas()
    frame.columns = [str(c).strip('"').upper() for c in frame.columns]
    return frame


def _marks(n: int) -> str:
    return ", ".join("?" for _ in range(n))


def _none(value: Any) -> Any:
    """NaN / NaT / pandas NA as None (for dicts shown as text)."""
    try:
        return None if value is None or pd.isna(value) else value
    except (TypeError, ValueError):  # lists, dicts
        return value


# --- where the tables are, and which exist --------------------------------------------------------------


@dataclass(frozen=True)
class Catalog:
    """The app's tables as the warehouse holds them now: location, columns (with types) and row counts."""

    database: str
    schema: str
    columns: dict[str, tuple[str, ...]] = field(default_factory=dict)
    types: dict[str, dict[str, str]] = field(default_factory=dict)
    row_counts: dict[str, int] = field(default_factory=dict)

    @property
    def location(self) -> str:
        return f"{self.database}.{self.schema}"

    def has(self, table: str, *columns: str) -> bool:
        """Whether ``table`` exists with every one of ``columns``."""
        present = self.columns.get(table)
        return present is not None and all(c in present for c in columns)

    def table(self, table: str) -> str:
        """The table's qualified name (checked identifiers)."""
        return f"{self.database}.{self.schema}.{identifier(table, 'table name')}"

    def pick(self, table: str, wanted: tuple[str, ...] | list[str]) -> list[str]:
        """The ``wanted`` columns the table has, in the order asked for."""
        present = set(self.columns.get(table, ()))
        return [c for c in wanted if c in present]

    def numeric(self, table: str) -> list[str]:
        types = self.types.get(table, {})
        return [c for c in self.columns.get(table, ()) if types.get(c, "").upper() in NUMERIC_TYPES]

    def rows(self, table: str) -> int:
        return int(self.row_counts.get(table) or 0)

    def value_ready(self) -> bool:
        """Whether PROCESSED_DATA carries the customer-value columns (the value pipeline has run)."""
        return self.has(PROCESSED, "P_ALIVE", "CLV")


def current_location(session: Any, location: str | None = None) -> tuple[str, str]:
    """The database and schema the app reads: ``location`` if given, else the session's current ones."""
    if location:
        return parse_location(location)
    row = session.sql("SELECT CURRENT_DATABASE(), CURRENT_SCHEMA()").collect()[0]
    if row[0] is None or row[1] is None:
        raise ExplorerError(
            "The session has no current database or schema: set SNOWFLAKE_DATABASE and SNOWFLAKE_SCHEMA "
            "(or SEGMENT_EXPLORER_SCHEMA=DATABASE.SCHEMA), or deploy the app into the schema that holds "
            "the segmentation tables."
        )
    return identifier(str(row[0]), "database name"), identifier(str(row[1]), "schema name")


def _table_rows(session: Any, database: str, schema: str) -> pd.DataFrame:
    return _rows(
        session,
        f"SELECT TABLE_NAME, ROW_COUNT, LAST_ALTERED FROM {database}.INFORMATION_SCHEMA.TABLES "
        f"WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({_marks(len(TABLES))}) ORDER BY TABLE_NAME",
        [schema, *TABLES],
    )


def read_catalog(session: Any, location: str | None = None) -> Catalog:
    """Which of the app's tables exist, with their columns, column types and row counts (two queries)."""
    database, schema = current_location(session, location)
    columns = _rows(
        session,
        f"SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM {database}.INFORMATION_SCHEMA.COLUMNS "
        f"WHERE TABLE_SCHEMA = ? AND TABLE_NAME IN ({_marks(len(TABLES))}) "
        "ORDER BY TABLE_NAME, ORDINAL_POSITION",
        [schema, *TABLES],
    )
    by_table: dict[str, list[str]] = {}
    types: dict[str, dict[str, str]] = {}
    for row in columns.itertuples(index=False):
        table, column = str(row.TABLE_NAME).upper(), str(row.COLUMN_NAME).upper()
        if not _IDENTIFIER.match(column):
            continue  # a quoted column name of another tool: never written into SQL
        by_table.setdefault(table, []).append(column)
        types.setdefault(table, {})[column] = str(row.DATA_TYPE).upper()
    counts = _table_rows(session, database, schema)
    row_counts = {str(r.TABLE_NAME).upper(): int(_none(r.ROW_COUNT) or 0) for r in counts.itertuples()}
    return Catalog(database, schema, {t: tuple(c) for t, c in by_table.items()}, types, row_counts)


#: Per table: a cheap expression that changes with every run that writes it (run ids, snapshots).
_RUN_MARKS = {
    SUMMARY: "MAX(RUN_ID)",
    DRIFT: "MAX(RUN_ID)",
    MODELS: "MAX(REGISTERED_AT)",
    PROFILES: "MAX(SNAPSHOT_DATE)",
    FLOWS: "MAX(SNAPSHOT_DATE)",
    VALUE_MODELS: "MAX(VERSION)",
}
_MARK_COLUMNS = {
    SUMMARY: "RUN_ID",
    DRIFT: "RUN_ID",
    MODELS: "REGISTERED_AT",
    PROFILES: "SNAPSHOT_DATE",
    FLOWS: "SNAPSHOT_DATE",
    VALUE_MODELS: "VERSION",
}


def data_version(session: Any, location: str | None = None) -> str:
    """A text that changes whenever a run writes the tables the app reads: what caches are keyed on.

    Snowflake's INFORMATION_SCHEMA.TABLES gives every table's row count and LAST_ALTERED (changed
    by DML and DDL); the embedded warehouse gives row counts only, so the latest run id, model
    registration and snapshot of the small tables every run writes are added (one query). A
    status change (a version set to RETIRED) is caught through the READY count.
    """
    database, schema = current_location(session, location)
    tables = _table_rows(session, database, schema)
    present = {str(t).upper() for t in tables["TABLE_NAME"]}
    parts = [f"{database}.{schema}"]
    parts += [f"{r.TABLE_NAME}:{_none(r.ROW_COUNT)}:{_none(r.LAST_ALTERED)}" for r in tables.itertuples()]
    selects = []
    for table, mark in _RUN_MARKS.items():
        if table in present:
            selects.append(
                f"SELECT '{table}' AS T, CAST({mark} AS VARCHAR) AS V FROM {database}.{schema}.{table}"
            )
    if MODELS in present:
        selects.append(
            f"SELECT 'READY' AS T, CAST(SUM(IFF(STATUS = 'READY', 1, 0)) AS VARCHAR) AS V "
            f"FROM {database}.{schema}.{MODELS}"
        )
    if selects:
        try:
            marks = _rows(session, " UNION ALL ".join(selects))
            parts += [f"{r.T}={r.V}" for r in marks.itertuples()]
        except Exception as exc:  # noqa: BLE001 - an older table layout: row counts still tell most changes
            parts.append(f"marks unavailable: {type(exc).__name__}")
    return "|".join(parts)


# --- models -----------------------------------------------------------------------------------------------


def _json(text: Any) -> Any:
    if text is None or (isinstance(text, float) and math.isnan(text)):
        return None
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return None


def _dig(doc: Any, *path: str) -> Any:
    for key in path:
        if not isinstance(doc, dict):
            return None
        doc = doc.get(key)
    return doc


def require_model(cat: Catalog) -> None:
    if not cat.has(MODELS, "VERSION") or cat.rows(MODELS) == 0:
        raise EmptyState(NO_MODEL)


def model_versions(session: Any, cat: Catalog, limit: int = 100) -> pd.DataFrame:
    """Every stored model version, newest first, with its headline evidence from METRICS."""
    require_model(cat)
    wanted = ("VERSION", "TRAINED_AT", "REGISTERED_AT", "RUN_ID", "STATUS", "K", "METRICS")
    columns = cat.pick(MODELS, wanted)
    order = ", ".join(
        f"{c} {d} NULLS LAST"
        for c, d in (("TRAINED_AT", "DESC"), ("REGISTERED_AT", "DESC"), ("VERSION", "DESC"))
        if c in columns
    )
    frame = _rows(
        session,
        f"SELECT {', '.join(columns)} FROM {cat.table(MODELS)} ORDER BY {order} LIMIT {int(limit)}",
    )
    metrics = [_json(m) for m in frame.get("METRICS", pd.Series([None] * len(frame)))]
    frame["SILHOUETTE"] = [_dig(m, "silhouette") for m in metrics]
    frame["STABILITY_ARI"] = [_dig(m, "stability", "ari_mean") for m in metrics]
    frame["STABILITY"] = [_dig(m, "stability", "verdict") for m in metrics]
    frame["FAITHFUL_SHARE"] = [_dig(m, "naming", "faithful_share") for m in metrics]
    frame["K_SOURCE"] = [_dig(m, "k_choice", "source") for m in metrics]
    frame["K_NOTE"] = [_dig(m, "k_choice", "note") for m in metrics]
    frame["RETRAINED_BECAUSE"] = [_dig(m, "retrained_because") for m in metrics]
    frame["STABILITY_DETAIL"] = [_dig(m, "stability") for m in metrics]
    if "STATUS" not in frame:
        frame["STATUS"] = "READY"
    return frame.drop(columns=["METRICS"], errors="ignore")


def latest_scoring(session: Any, cat: Catalog) -> dict[str, Any]:
    """The latest scoring run (SEGMENT_SUMMARY): run id, model version, time, customers; {} before any."""
    if not cat.has(SUMMARY, "RUN_ID", "MODEL_VERSION", "CUSTOMERS"):
        return {}
    stamp = "SCORED_AT" if cat.has(SUMMARY, "SCORED_AT") else "RUN_ID"
    frame = _rows(
        session,
        f"SELECT RUN_ID, MAX(MODEL_VERSION) AS MODEL_VERSION, MAX({stamp}) AS SCORED_AT, "
        f"SUM(CUSTOMERS) AS CUSTOMERS FROM {cat.table(SUMMARY)} GROUP BY RUN_ID "
        f"ORDER BY MAX({stamp}) DESC NULLS LAST, RUN_ID DESC LIMIT 1",
    )
    if frame.empty:
        return {}
    row = frame.iloc[0]
    return {
        "run_id": str(row["RUN_ID"]),
        "model_version": _none(row["MODEL_VERSION"]),
        "scored_at": _none(row["SCORED_AT"]),
        "customers": int(_none(row["CUSTOMERS"]) or 0),
    }


def active_model(
    versions: pd.DataFrame, scoring: dict[str, Any], pinned: str | None = None
) -> dict[str, Any]:
    """Which version scores now, which would score without a pin, and whether one is pinned.

    The pin (``prediction.model_version``) is Kedro configuration the warehouse does not hold; the
    latest scoring run shows which version was used, and a used version older than the newest
    READY one means a pin (or a training stored after the last scoring). ``pinned`` is the
    configured pin when the app knows it (``kedro explorer`` passes it).
    """
    ready = versions[versions["STATUS"].astype(str).str.upper() == "READY"]
    newest = str(ready.iloc[0]["VERSION"]) if not ready.empty else None
    in_use = scoring.get("model_version") or None
    return {
        "in_use": in_use or (pinned if pinned else newest),
        "newest_ready": newest,
        "pinned": pinned or None,
        "pinned_or_stale": bool(in_use and newest and in_use != newest),
        "scored": bool(in_use),
    }


def k_selection(session: Any, cat: Catalog, version: str) -> pd.DataFrame:
    """The k values one training tried, with their criteria (MODEL_K_SELECTION)."""
    if not cat.has(K_SELECTION, "MODEL_VERSION", "K"):
        return pd.DataFrame()
    wanted = ("K", "INERTIA", "SILHOUETTE", "CALINSKI_HARABASZ", "DAVIES_BOULDIN", "IS_CHOSEN")
    return _rows(
        session,
        f"SELECT {', '.join(cat.pick(K_SELECTION, wanted))} FROM {cat.table(K_SELECTION)} "
        "WHERE MODEL_VERSION = ? ORDER BY K LIMIT 200",
        [str(version)],
    )


def model_segments(session: Any, cat: Catalog, version: str) -> pd.DataFrame:
    """One version's segments as its training sample saw them, with faithfulness (MODEL_SEGMENTS)."""
    if not cat.has(MODEL_SEGMENTS, "MODEL_VERSION", "SEGMENT_ID"):
        return pd.DataFrame()
    wanted = ("SEGMENT_ID", "LABEL", "CUSTOMERS", "CUSTOMER_SHARE", "REVENUE_SHARE", "STATS")
    frame = _rows(
        session,
        f"SELECT {', '.join(cat.pick(MODEL_SEGMENTS, wanted))} FROM {cat.table(MODEL_SEGMENTS)} "
        "WHERE MODEL_VERSION = ? ORDER BY SEGMENT_ID LIMIT 500",
        [str(version)],
    )
    stats = [_json(s) for s in frame.get("STATS", pd.Series([None] * len(frame)))]
    frame["FAITHFULNESS"] = [_dig(s, "faithfulness") for s in stats]
    frame["BASE_LABEL"] = [_dig(s, "base_label") for s in stats]
    return frame.drop(columns=["STATS"], errors="ignore")


def run_summary(session: Any, cat: Catalog, run_id: str) -> pd.DataFrame:
    """One scoring run's segments (SEGMENT_SUMMARY): sizes, revenue and faithfulness per segment."""
    if not cat.has(SUMMARY, "RUN_ID", "SEGMENT_ID"):
        return pd.DataFrame()
    wanted = (
        "SEGMENT_ID",
        "SEGMENT_LABEL",
        "BASE_LABEL",
        "CUSTOMERS",
        "CUSTOMER_SHARE",
        "REVENUE_SHARE",
        "FAITHFUL_CUSTOMERS",
        "FAITHFUL_SHARE",
        *SEGMENT_VALUE_COLUMNS,
    )
    return _rows(
        session,
        f"SELECT {', '.join(cat.pick(SUMMARY, wanted))} FROM {cat.table(SUMMARY)} "
        "WHERE RUN_ID = ? ORDER BY SEGMENT_ID LIMIT 500",
        [str(run_id)],
    )


def drift_runs(session: Any, cat: Catalog, limit: int = 365) -> pd.DataFrame:
    """The latest ``limit`` drift measurements (SEGMENT_DRIFT), oldest first, FEATURE_PSI decoded."""
    if not cat.has(DRIFT, "STATUS"):
        return pd.DataFrame()
    wanted = (
        "RUN_ID",
        "MEASURED_AT",
        "SNAPSHOT_DATE",
        "MODEL_VERSION",
        "MODEL_AGE_DAYS",
        "CUSTOMERS",
        "MAX_PSI",
        "MAX_PSI_FEATURE",
        "MAX_SHARE_SHIFT",
        "DISTANCE_RATIO",
        "STATUS",
        "REASONS",
        "FEATURE_PSI",
    )
    columns = cat.pick(DRIFT, wanted)
    order = "MEASURED_AT" if "MEASURED_AT" in columns else "RUN_ID"
    frame = _rows(
        session,
        f"SELECT {', '.join(columns)} FROM {cat.table(DRIFT)} ORDER BY {order} DESC NULLS LAST "
        f"LIMIT {int(limit)}",
    )
    frame = frame.iloc[::-1].reset_index(drop=True)
    if "FEATURE_PSI" in frame:
        frame["FEATURE_PSI"] = [_json(p) or {} for p in frame["FEATURE_PSI"]]
    return frame


def psi_long(drift: pd.DataFrame) -> pd.DataFrame:
    """Drift runs as one row per (run, feature, PSI), for the chart."""
    rows = []
    for run in drift.itertuples(index=False):
        for feature, value in (getattr(run, "FEATURE_PSI", None) or {}).items():
            rows.append(
                {
                    "MEASURED_AT": getattr(run, "MEASURED_AT", None),
                    "RUN_ID": getattr(run, "RUN_ID", None),
                    "FEATURE": feature,
                    "PSI": value,
                }
            )
    return pd.DataFrame(rows, columns=["MEASURED_AT", "RUN_ID", "FEATURE", "PSI"])


# --- segments: the latest snapshot -------------------------------------------------------------------


def segment_cards(session: Any, cat: Catalog) -> pd.DataFrame:
    """SEGMENT_PROFILES (the latest snapshot's segments), biggest revenue share first."""
    if not cat.has(PROFILES, "SEGMENT_ID", "SEGMENT_LABEL"):
        if not cat.has(MODELS) or cat.rows(MODELS) == 0:
            raise EmptyState(NO_MODEL)
        raise EmptyState(NO_SEGMENTS)
    wanted = (
        "SNAPSHOT_DATE",
        "SEGMENT_ID",
        "SEGMENT_LABEL",
        "CUSTOMERS",
        "CUSTOMER_SHARE",
        "REVENUE_SHARE",
        "DOMINANT_RFM_SEGMENT",
        "MEDIAN_RECENCY_DAYS",
        "MEDIAN_FREQUENCY",
        "MEDIAN_MONETARY",
        "TOP_FEATURE_1",
        "TOP_FEATURE_1_SD",
        "TOP_FEATURE_2",
        "TOP_FEATURE_2_SD",
        "TOP_FEATURE_3",
        "TOP_FEATURE_3_SD",
        "DESCRIPTION",
        "SUGGESTED_ACTION",
        "MODEL_VERSION",
        *SEGMENT_VALUE_COLUMNS,
    )
    columns = cat.pick(PROFILES, wanted)
    # every feature's median (MEDIAN_<feature>): the segment page's contrast shows them
    columns += [c for c in cat.columns.get(PROFILES, ()) if c.startswith("MEDIAN_") and c not in columns]
    order = "REVENUE_SHARE DESC NULLS LAST, " if "REVENUE_SHARE" in columns else ""
    frame = _rows(
        session,
        f"SELECT {', '.join(columns)} FROM {cat.table(PROFILES)} ORDER BY {order}SEGMENT_ID LIMIT 1000",
    )
    if frame.empty:
        raise EmptyState(NO_SEGMENTS)
    frame["SEGMENT_ID"] = frame["SEGMENT_ID"].astype(int)
    return frame


def snapshots(session: Any, cat: Catalog) -> list[date]:
    """The snapshot dates the history holds, newest first (from the small SEGMENT_FLOWS table)."""
    for table in (FLOWS, MIGRATIONS):
        if cat.has(table, "SNAPSHOT_DATE"):
            frame = _rows(
                session,
                f"SELECT DISTINCT SNAPSHOT_DATE FROM {cat.table(table)} ORDER BY SNAPSHOT_DATE DESC LIMIT 5000",
            )
            return [pd.Timestamp(d).date() for d in frame["SNAPSHOT_DATE"] if _none(d) is not None]
    return []


def segment_trend(session: Any, cat: Catalog, segment_id: int) -> pd.DataFrame:
    """Customers and net revenue of one segment at every snapshot, with its shares of the base.

    From SEGMENT_MIGRATIONS (customers and net spend by destination segment, per snapshot): a few
    rows per snapshot instead of a scan of the per-customer history.
    """
    if not cat.has(MIGRATIONS, "SNAPSHOT_DATE", "TO_SEGMENT_ID", "CUSTOMERS"):
        return pd.DataFrame(columns=["SNAPSHOT_DATE", "CUSTOMERS", "NET_REVENUE"])
    revenue = "NET_REVENUE" if cat.has(MIGRATIONS, "NET_REVENUE") else "0"
    frame = _rows(
        session,
        "SELECT SNAPSHOT_DATE, "
        "SUM(IFF(TO_SEGMENT_ID = ?, CUSTOMERS, 0)) AS CUSTOMERS, "
        f"SUM(IFF(TO_SEGMENT_ID = ?, {revenue}, 0)) AS NET_REVENUE, "
        "SUM(IFF(TO_SEGMENT_ID >= 0, CUSTOMERS, 0)) AS ALL_CUSTOMERS, "
        f"SUM(IFF(TO_SEGMENT_ID >= 0, {revenue}, 0)) AS ALL_NET_REVENUE "
        f"FROM {cat.table(MIGRATIONS)} GROUP BY SNAPSHOT_DATE ORDER BY SNAPSHOT_DATE LIMIT 5000",
        [int(segment_id), int(segment_id)],
    )
    for column in ("CUSTOMERS", "ALL_CUSTOMERS"):
        frame[column] = pd.to_numeric(frame[column]).fillna(0).astype(int)
    for column in ("NET_REVENUE", "ALL_NET_REVENUE"):
        frame[column] = pd.to_numeric(frame[column]).astype(float)
    frame["CUSTOMER_SHARE"] = frame["CUSTOMERS"] / frame["ALL_CUSTOMERS"].where(frame["ALL_CUSTOMERS"] > 0)
    frame["REVENUE_SHARE"] = frame["NET_REVENUE"] / frame["ALL_NET_REVENUE"].where(
        frame["ALL_NET_REVENUE"] != 0
    )
    frame["SNAPSHOT_DATE"] = [pd.Timestamp(d).date() for d in frame["SNAPSHOT_DATE"]]
    return frame


def segment_moves(session: Any, cat: Catalog, segment_id: int, snapshot: date) -> pd.DataFrame:
    """Where a segment's members came from and went at one snapshot (rows of SEGMENT_MIGRATIONS)."""
    if not cat.has(MIGRATIONS, "SNAPSHOT_DATE", "FROM_SEGMENT_ID", "TO_SEGMENT_ID"):
        return pd.DataFrame()
    wanted = (
        "FROM_SEGMENT_ID",
        "FROM_SEGMENT",
        "TO_SEGMENT_ID",
        "TO_SEGMENT",
        "CUSTOMERS",
        "NET_REVENUE",
        "NET_REVENUE_CHANGE",
    )
    return _rows(
        session,
        f"SELECT {', '.join(cat.pick(MIGRATIONS, wanted))} FROM {cat.table(MIGRATIONS)} "
        "WHERE SNAPSHOT_DATE = TO_DATE(?) AND (FROM_SEGMENT_ID = ? OR TO_SEGMENT_ID = ?) "
        "ORDER BY CUSTOMERS DESC LIMIT 1000",
        [snapshot.isoformat(), int(segment_id), int(segment_id)],
    )


def segment_flow(session: Any, cat: Catalog, segment_id: int, snapshot: date) -> dict[str, Any]:
    """One segment's SEGMENT_FLOWS row at a snapshot (before, after, stayed, entered, exited); {} if none."""
    if not cat.has(FLOWS, "SNAPSHOT_DATE", "SEGMENT_ID"):
        return {}
    wanted = ("CUSTOMERS_BEFORE", "CUSTOMERS_AFTER", "STAYED", "ENTERED", "ENTERED_NEW", "EXITED")
    frame = _rows(
        session,
        f"SELECT {', '.join(cat.pick(FLOWS, wanted))} FROM {cat.table(FLOWS)} "
        "WHERE SNAPSHOT_DATE = TO_DATE(?) AND SEGMENT_ID = ? LIMIT 1",
        [snapshot.isoformat(), int(segment_id)],
    )
    if frame.empty:
        return {}
    return {k: int(_none(v) or 0) for k, v in frame.iloc[0].items()}


def feature_columns(cat: Catalog) -> list[str]:
    """The numeric customer features of PROCESSED_DATA (scores, ids and distances left out)."""
    return [c for c in cat.numeric(PROCESSED) if c not in NOT_FEATURES]


def feature_stats(session: Any, cat: Catalog) -> pd.DataFrame:
    """Per segment and feature: values (non-null), mean and population variance, in one grouped scan.

    Every segment's contrast and the whole base's mean and standard deviation come from these few
    rows (``base_stats``), so one scan of PROCESSED_DATA serves the segment page for every segment.
    """
    features = feature_columns(cat)
    columns = ["SEGMENT_ID", "FEATURE", "N", "MEAN", "VAR"]
    if not features:
        return pd.DataFrame(columns=columns)
    aggs = []
    for i, f in enumerate(features):
        value = f"CAST({f} AS DOUBLE)"
        aggs += [f"COUNT({value}) AS N{i}", f"AVG({value}) AS A{i}", f"VAR_POP({value}) AS V{i}"]
    wide = _rows(
        session,
        f"SELECT SEGMENT_ID, {', '.join(aggs)} FROM {cat.table(PROCESSED)} GROUP BY SEGMENT_ID LIMIT 10000",
    )
    rows = [
        (int(r["SEGMENT_ID"]), f, int(r[f"N{i}"] or 0), r[f"A{i}"], r[f"V{i}"])
        for _, r in wide.iterrows()
        for i, f in enumerate(features)
    ]
    return pd.DataFrame(rows, columns=columns).astype({"MEAN": float, "VAR": float})


def base_stats(stats: pd.DataFrame) -> pd.DataFrame:
    """All customers' mean and population standard deviation per feature, from the segments' ones.

    Law of total variance: var = sum(n_k * (var_k + mean_k^2)) / N - mean^2, mean = sum(n_k * mean_k) / N.
    """
    frame = stats[stats["N"] > 0].copy()
    frame["SUM"] = frame["N"] * frame["MEAN"]
    frame["SQUARES"] = frame["N"] * (frame["VAR"].fillna(0.0) + frame["MEAN"] ** 2)
    total = frame.groupby("FEATURE", sort=False)[["N", "SUM", "SQUARES"]].sum()
    mean = total["SUM"] / total["N"]
    variance = (total["SQUARES"] / total["N"] - mean**2).clip(lower=0.0)
    out = pd.DataFrame({"ALL_MEAN": mean, "ALL_SD": variance**0.5}).rename_axis("FEATURE").reset_index()
    order = list(dict.fromkeys(stats["FEATURE"]))
    return out.set_index("FEATURE").reindex(order).rename_axis("FEATURE").reset_index()


def contrast(
    stats: pd.DataFrame, segment_id: int, profile: pd.Series | dict[str, Any] | None = None
) -> pd.DataFrame:
    """What sets a segment apart: per feature, its mean against all customers' (and its median).

    ``SD_DIFF`` = (segment mean - all customers' mean) / all customers' standard deviation: the
    standardised difference SEGMENT_PROFILES names its top features by. Largest |SD_DIFF| first.
    The segment's medians are SEGMENT_PROFILES' (``MEDIAN_<feature>``, exact, computed by the
    monitoring pipeline), so the app computes no median over the whole table.
    """
    frame = base_stats(stats)
    mine = stats[stats["SEGMENT_ID"] == int(segment_id)].set_index("FEATURE")["MEAN"]
    frame["SEGMENT_MEAN"] = [float(mine.get(f, math.nan)) for f in frame["FEATURE"]]
    profile = profile if profile is not None else {}
    frame["SEGMENT_MEDIAN"] = [
        float(profile.get(f"MEDIAN_{f}")) if _none(profile.get(f"MEDIAN_{f}")) is not None else math.nan
        for f in frame["FEATURE"]
    ]
    sd = frame["ALL_SD"].where(frame["ALL_SD"] > 0)
    frame["SD_DIFF"] = (frame["SEGMENT_MEAN"] - frame["ALL_MEAN"]) / sd
    frame["_ORDER"] = frame["SD_DIFF"].abs().fillna(-1.0)
    frame = frame.sort_values(["_ORDER", "FEATURE"], ascending=[False, True]).drop(columns="_ORDER")
    return frame[["FEATURE", "SEGMENT_MEDIAN", "SEGMENT_MEAN", "ALL_MEAN", "SD_DIFF"]].reset_index(drop=True)


# --- members -------------------------------------------------------------------------------------------


def channel_columns(cat: Catalog) -> dict[str, str]:
    """Sales channel -> its SHARE_<CHANNEL> column of PROCESSED_DATA (the project's channel shares)."""
    return {
        c[len("SHARE_") :].lower(): c
        for c in cat.columns.get(PROCESSED, ())
        if c.startswith("SHARE_") and cat.types.get(PROCESSED, {}).get(c, "") in NUMERIC_TYPES
    }


def channel_expression(cat: Catalog) -> str | None:
    """SQL for each customer's main channel (largest share of net spend; 'none' without spend)."""
    channels = channel_columns(cat)
    if not channels:
        return None
    greatest = (
        f"GREATEST({', '.join(channels.values())})" if len(channels) > 1 else next(iter(channels.values()))
    )
    cases = " ".join(f"WHEN {column} = {greatest} THEN '{name}'" for name, column in channels.items())
    return f"CASE WHEN COALESCE({greatest}, 0) <= 0 THEN 'none' {cases} ELSE 'none' END"


def value_column(cat: Catalog) -> str:
    """The column the members' value filter and default sort use: CLV once it exists, else net spend."""
    return "CLV" if cat.has(PROCESSED, "CLV") else "MONETARY"


#: Member columns (in this order when present), the CSV's columns too.
MEMBER_COLUMNS = (
    "CUSTOMER_ID",
    "SEGMENT_ID",
    "SEGMENT_LABEL",
    "RFM_SEGMENT",
    "RFM_SCORE",
    "R_SCORE",
    "F_SCORE",
    "M_SCORE",
    "RECENCY_DAYS",
    "FREQUENCY",
    "MONETARY",
    "AVG_ORDER_VALUE",
    "P_ALIVE",
    "EXPECTED_PURCHASES",
    "CLV",
)


@dataclass(frozen=True)
class MemberFilter:
    """The members table's filters (all optional; the defaults keep everyone)."""

    rfm_segments: tuple[str, ...] = ()
    r_score: tuple[int, int] = (1, 5)
    f_score: tuple[int, int] = (1, 5)
    m_score: tuple[int, int] = (1, 5)
    channels: tuple[str, ...] = ()
    last_order_from: date | None = None
    last_order_to: date | None = None
    min_value: float | None = None
    min_p_alive: float | None = None
    id_contains: str = ""


def _score_range(value: Any, name: str) -> tuple[int, int]:
    low, high = (int(v) for v in value)
    if not (1 <= low <= high <= 5):
        raise ExplorerError(f"{name} must be a range within 1..5, got {low}..{high}.")
    return low, high


def member_where(cat: Catalog, segment_id: int, flt: MemberFilter) -> tuple[str, list[Any]]:
    """The WHERE clause of a segment's filtered members, with its bound parameters."""
    clauses, params = ["SEGMENT_ID = ?"], [int(segment_id)]
    if flt.rfm_segments and cat.has(PROCESSED, "RFM_SEGMENT"):
        clauses.append(f"RFM_SEGMENT IN ({_marks(len(flt.rfm_segments))})")
        params += [str(s) for s in flt.rfm_segments]
    for column, bounds in (("R_SCORE", flt.r_score), ("F_SCORE", flt.f_score), ("M_SCORE", flt.m_score)):
        low, high = _score_range(bounds, column)
        if (low, high) != (1, 5) and cat.has(PROCESSED, column):
            clauses.append(f"{column} BETWEEN ? AND ?")
            params += [low, high]
    channel = channel_expression(cat)
    if flt.channels and channel:
        clauses.append(f"({channel}) IN ({_marks(len(flt.channels))})")
        params += [str(c) for c in flt.channels]
    if cat.has(PROCESSED, "LAST_ORDER_TS"):
        if flt.last_order_from is not None:
            clauses.append("TO_DATE(LAST_ORDER_TS) >= TO_DATE(?)")
            params.append(date.fromisoformat(str(flt.last_order_from)).isoformat())
        if flt.last_order_to is not None:
            clauses.append("TO_DATE(LAST_ORDER_TS) <= TO_DATE(?)")
            params.append(date.fromisoformat(str(flt.last_order_to)).isoformat())
    if flt.min_value is not None and math.isfinite(float(flt.min_value)):
        clauses.append(f"{value_column(cat)} >= ?")
        params.append(float(flt.min_value))
    if (
        flt.min_p_alive is not None
        and cat.has(PROCESSED, "P_ALIVE")
        and math.isfinite(float(flt.min_p_alive))
    ):
        clauses.append("P_ALIVE >= ?")
        params.append(float(flt.min_p_alive))
    if flt.id_contains:
        # a substring, bound as a value: quotes, %, _ and SQL keywords are plain characters here
        clauses.append("POSITION(UPPER(?) IN UPPER(CUSTOMER_ID)) > 0")
        params.append(str(flt.id_contains))
    return " AND ".join(clauses), params


def member_select(cat: Catalog) -> tuple[list[str], list[str]]:
    """(SQL select items, output column names) of the members table and its CSV."""
    columns = cat.pick(PROCESSED, MEMBER_COLUMNS)
    items, names = list(columns), list(columns)
    channel = channel_expression(cat)
    if channel:
        items.append(f"{channel} AS MAIN_CHANNEL")
        names.append("MAIN_CHANNEL")
    if cat.has(PROCESSED, "LAST_ORDER_TS"):
        items.append("TO_DATE(LAST_ORDER_TS) AS LAST_ORDER")
        names.append("LAST_ORDER")
    return items, names


def sortable_columns(cat: Catalog) -> list[str]:
    """The columns the members table can be sorted by (the only sort keys written into SQL)."""
    return [c for c in member_select(cat)[1] if c not in ("SEGMENT_ID", "SEGMENT_LABEL")]


def _order_by(cat: Catalog, sort: str, descending: bool) -> str:
    if sort not in sortable_columns(cat):
        raise ExplorerError(
            f"Cannot sort by {str(sort)[:80]!r}: choose one of {', '.join(sortable_columns(cat))}."
        )
    tie = "" if sort == "CUSTOMER_ID" else ", CUSTOMER_ID"
    return f"{sort} {'DESC' if descending else 'ASC'} NULLS LAST{tie}"


def member_count(session: Any, cat: Catalog, segment_id: int, flt: MemberFilter) -> int:
    """How many of a segment's members pass the filters."""
    if not cat.has(PROCESSED, "SEGMENT_ID", "CUSTOMER_ID"):
        raise EmptyState(NO_MODEL)
    where, params = member_where(cat, segment_id, flt)
    frame = _rows(session, f"SELECT COUNT(*) AS N FROM {cat.table(PROCESSED)} WHERE {where}", params)
    return int(frame.iloc[0]["N"])


def members(
    session: Any,
    cat: Catalog,
    segment_id: int,
    flt: MemberFilter,
    sort: str,
    descending: bool,
    limit: int,
) -> pd.DataFrame:
    """A segment's filtered members, sorted in the warehouse, at most ``limit`` rows."""
    if not cat.has(PROCESSED, "SEGMENT_ID", "CUSTOMER_ID"):
        raise EmptyState(NO_MODEL)
    items, _ = member_select(cat)
    where, params = member_where(cat, segment_id, flt)
    return _rows(
        session,
        f"SELECT {', '.join(items)} FROM {cat.table(PROCESSED)} WHERE {where} "
        f"ORDER BY {_order_by(cat, sort, descending)} LIMIT {max(int(limit), 0)}",
        params,
    )


def member_facets(session: Any, cat: Catalog, segment_id: int) -> dict[str, Any]:
    """Filter choices of a segment: its classic RFM segments and main channels (with counts), order dates."""
    out: dict[str, Any] = {"rfm_segments": [], "channels": [], "first_order": None, "last_order": None}
    if cat.has(PROCESSED, "RFM_SEGMENT"):
        frame = _rows(
            session,
            f"SELECT RFM_SEGMENT, COUNT(*) AS N FROM {cat.table(PROCESSED)} WHERE SEGMENT_ID = ? "
            "GROUP BY RFM_SEGMENT ORDER BY N DESC LIMIT 100",
            [int(segment_id)],
        )
        out["rfm_segments"] = [str(s) for s in frame["RFM_SEGMENT"] if _none(s) is not None]
    channel = channel_expression(cat)
    if channel:
        frame = _rows(
            session,
            f"SELECT {channel} AS CHANNEL, COUNT(*) AS N FROM {cat.table(PROCESSED)} WHERE SEGMENT_ID = ? "
            "GROUP BY 1 ORDER BY N DESC LIMIT 100",
            [int(segment_id)],
        )
        out["channels"] = [str(c) for c in frame["CHANNEL"]]
    if cat.has(PROCESSED, "LAST_ORDER_TS"):
        frame = _rows(
            session,
            "SELECT MIN(TO_DATE(LAST_ORDER_TS)) AS LO, MAX(TO_DATE(LAST_ORDER_TS)) AS HI "
            f"FROM {cat.table(PROCESSED)} WHERE SEGMENT_ID = ?",
            [int(segment_id)],
        )
        lo, hi = frame.iloc[0]["LO"], frame.iloc[0]["HI"]
        out["first_order"] = pd.Timestamp(lo).date() if _none(lo) is not None else None
        out["last_order"] = pd.Timestamp(hi).date() if _none(hi) is not None else None
    return out


# --- movements -------------------------------------------------------------------------------------------


def migrations_between(session: Any, cat: Catalog, before: date, after: date) -> pd.DataFrame:
    """Customers and net revenue from each segment at ``before`` to each segment at ``after``.

    Consecutive snapshots come from SEGMENT_MIGRATIONS as the monitoring pipeline stored them; any
    other pair is computed in the warehouse from SEGMENT_HISTORY (one full outer join of the two
    snapshots, grouped): ``new`` for customers absent before, ``gone`` for customers absent after.
    """
    columns = ["FROM_SEGMENT_ID", "FROM_SEGMENT", "TO_SEGMENT_ID", "TO_SEGMENT", "CUSTOMERS", "NET_REVENUE"]
    if cat.has(MIGRATIONS, "SNAPSHOT_DATE", "PREVIOUS_SNAPSHOT_DATE", *columns):
        stored = _rows(
            session,
            f"SELECT {', '.join(columns)} FROM {cat.table(MIGRATIONS)} "
            "WHERE SNAPSHOT_DATE = TO_DATE(?) AND PREVIOUS_SNAPSHOT_DATE = TO_DATE(?) "
            "ORDER BY CUSTOMERS DESC LIMIT 10000",
            [after.isoformat(), before.isoformat()],
        )
        if not stored.empty:
            return _typed_moves(stored)
    if not cat.has(HISTORY, "SNAPSHOT_DATE", "CUSTOMER_ID", "SEGMENT_ID", "SEGMENT_LABEL"):
        return pd.DataFrame(columns=columns)
    money = "b.MONETARY" if cat.has(HISTORY, "MONETARY") else "0"
    history = cat.table(HISTORY)
    frame = _rows(
        session,
        f"WITH a AS (SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL FROM {history} WHERE SNAPSHOT_DATE = TO_DATE(?)), "
        f"b AS (SELECT * FROM {history} WHERE SNAPSHOT_DATE = TO_DATE(?)) "
        "SELECT COALESCE(a.SEGMENT_ID, -1) AS FROM_SEGMENT_ID, COALESCE(a.SEGMENT_LABEL, 'new') AS FROM_SEGMENT, "
        "COALESCE(b.SEGMENT_ID, -1) AS TO_SEGMENT_ID, COALESCE(b.SEGMENT_LABEL, 'gone') AS TO_SEGMENT, "
        f"COUNT(*) AS CUSTOMERS, SUM(COALESCE({money}, 0)) AS NET_REVENUE "
        "FROM a FULL OUTER JOIN b ON a.CUSTOMER_ID = b.CUSTOMER_ID "
        "GROUP BY 1, 2, 3, 4 ORDER BY CUSTOMERS DESC LIMIT 10000",
        [before.isoformat(), after.isoformat()],
    )
    return _typed_moves(frame)


def _typed_moves(frame: pd.DataFrame) -> pd.DataFrame:
    for column in ("FROM_SEGMENT_ID", "TO_SEGMENT_ID", "CUSTOMERS"):
        frame[column] = pd.to_numeric(frame[column]).astype(int)
    frame["NET_REVENUE"] = pd.to_numeric(frame["NET_REVENUE"]).astype(float).round(2)
    return frame.reset_index(drop=True)


#: SEGMENT_CHANGES columns shown first (any further column follows).
CHANGE_COLUMNS = (
    "CHANGE_ID",
    "CUSTOMER_ID",
    "CHANGE_SEQ",
    "FROM_SEGMENT_ID",
    "FROM_SEGMENT",
    "TO_SEGMENT_ID",
    "TO_SEGMENT",
    "FROM_RFM_SEGMENT",
    "TO_RFM_SEGMENT",
    "SNAPSHOT_DATE",
    "PREVIOUS_SNAPSHOT_DATE",
    "MODEL_VERSION",
)


def change_columns(cat: Catalog) -> list[str]:
    """SEGMENT_CHANGES' columns: the known ones first, then whatever else the table has."""
    present = list(cat.columns.get(CHANGES, ()))
    known = [c for c in CHANGE_COLUMNS if c in present]
    return known + [c for c in present if c not in known]


def _change_key(cat: Catalog, side: str) -> str:
    """Filter the feed by segment id when the table has one (labels may repeat across retrains)."""
    return f"{side}_SEGMENT_ID" if cat.has(CHANGES, f"{side}_SEGMENT_ID") else f"{side}_SEGMENT"


def change_snapshots(session: Any, cat: Catalog) -> list[date]:
    """The snapshots the activation feed holds changes of, newest first (the feed is appended to)."""
    if not cat.has(CHANGES, "SNAPSHOT_DATE"):
        return []
    frame = _rows(
        session,
        f"SELECT DISTINCT SNAPSHOT_DATE FROM {cat.table(CHANGES)} ORDER BY SNAPSHOT_DATE DESC LIMIT 5000",
    )
    return [pd.Timestamp(d).date() for d in frame["SNAPSHOT_DATE"] if _none(d) is not None]


def change_where(
    cat: Catalog,
    from_segments: tuple[Any, ...],
    to_segments: tuple[Any, ...],
    snapshot: date | None = None,
) -> tuple[str, list[Any]]:
    """WHERE clause of the activation feed by snapshot and from / to segment, with bound values."""
    clauses, params = ["1 = 1"], []
    if snapshot is not None and cat.has(CHANGES, "SNAPSHOT_DATE"):
        clauses.append("SNAPSHOT_DATE = TO_DATE(?)")
        params.append(date.fromisoformat(str(snapshot)).isoformat())
    for side, chosen in (("FROM", from_segments), ("TO", to_segments)):
        if chosen:
            key = _change_key(cat, side)
            clauses.append(f"{key} IN ({_marks(len(chosen))})")
            params += [_segment_id(v) if key.endswith("_ID") else str(v) for v in chosen]
    return " AND ".join(clauses), params


def _segment_id(value: Any) -> int:
    try:
        return int(str(value).strip())
    except ValueError:
        raise ExplorerError(f"A segment id is a whole number, got {str(value)[:40]!r}.") from None


def change_count(
    session: Any,
    cat: Catalog,
    from_segments: tuple[Any, ...],
    to_segments: tuple[Any, ...],
    snapshot: date | None = None,
) -> int:
    """How many feed rows pass the filters."""
    if not cat.has(CHANGES):
        return 0
    where, params = change_where(cat, from_segments, to_segments, snapshot)
    return int(
        _rows(session, f"SELECT COUNT(*) AS N FROM {cat.table(CHANGES)} WHERE {where}", params).iloc[0]["N"]
    )


def changes(
    session: Any,
    cat: Catalog,
    from_segments: tuple[Any, ...],
    to_segments: tuple[Any, ...],
    limit: int,
    snapshot: date | None = None,
) -> pd.DataFrame:
    """The activation feed (SEGMENT_CHANGES) by snapshot and from / to segment, at most ``limit`` rows."""
    if not cat.has(CHANGES):
        return pd.DataFrame()
    where, params = change_where(cat, from_segments, to_segments, snapshot)
    columns = change_columns(cat)
    order = ", ".join(c for c in ("CUSTOMER_ID", "CHANGE_SEQ") if c in columns) or columns[0]
    return _rows(
        session,
        f"SELECT {', '.join(columns)} FROM {cat.table(CHANGES)} WHERE {where} "
        f"ORDER BY {order} LIMIT {max(int(limit), 0)}",
        params,
    )


def change_segments(session: Any, cat: Catalog, snapshot: date | None = None) -> pd.DataFrame:
    """The feed's segments on each side (id or label, label, rows), for its filters."""
    if not cat.has(CHANGES):
        return pd.DataFrame(columns=["SIDE", "KEY", "LABEL", "N"])
    where, params = change_where(cat, (), (), snapshot)
    parts = []
    for side in ("FROM", "TO"):
        key = _change_key(cat, side)
        label = f"{side}_SEGMENT" if cat.has(CHANGES, f"{side}_SEGMENT") else key
        parts.append(
            f"SELECT '{side}' AS SIDE, CAST({key} AS VARCHAR) AS KEY, MAX({label}) AS LABEL, COUNT(*) AS N "
            f"FROM {cat.table(CHANGES)} WHERE {where} GROUP BY {key}"
        )
    return _rows(session, " UNION ALL ".join(parts) + " ORDER BY SIDE, N DESC LIMIT 2000", params * 2)


# --- one customer --------------------------------------------------------------------------------------

#: Customer ids longer than this cannot exist in the tables' practice; they are looked up anyway
#: (bound), but the page says so.
MAX_ID_LENGTH = 200


def customer(session: Any, cat: Catalog, customer_id: str) -> dict[str, Any]:
    """The customer's row of PROCESSED_DATA (latest segment, RFM, features, value); {} when unknown."""
    if not cat.has(PROCESSED, "CUSTOMER_ID"):
        raise EmptyState(NO_MODEL)
    items, _ = member_select(cat)
    extra = cat.pick(
        PROCESSED,
        (
            "REFERENCE_DATE",
            "MODEL_VERSION",
            "RUN_ID",
            "TENURE_DAYS",
            "DISTINCT_CATEGORIES",
            "RETURN_RATE",
            "CANCELLATION_RATE",
            "SPEND_LAST_90D",
            "SPEND_PREV_90D",
            "EXPECTED_ORDER_VALUE",
            "PREVIOUS_SEGMENT_LABEL",
            "IS_NEW_CUSTOMER",
        ),
    )
    extra += list(channel_columns(cat).values())
    if cat.has(PROCESSED, "FIRST_ORDER_TS"):
        extra.append("TO_DATE(FIRST_ORDER_TS) AS FIRST_ORDER")
    frame = _rows(
        session,
        f"SELECT {', '.join([*items, *extra])} FROM {cat.table(PROCESSED)} WHERE CUSTOMER_ID = ? LIMIT 1",
        [str(customer_id)],
    )
    return {} if frame.empty else {k: _none(v) for k, v in frame.iloc[0].items()}


def customer_history(session: Any, cat: Catalog, customer_id: str, limit: int = 1000) -> pd.DataFrame:
    """The customer's segment at every snapshot (SEGMENT_HISTORY), newest first."""
    if not cat.has(HISTORY, "CUSTOMER_ID", "SNAPSHOT_DATE"):
        return pd.DataFrame()
    wanted = (
        "SNAPSHOT_DATE",
        "SEGMENT_ID",
        "SEGMENT_LABEL",
        "RFM_SEGMENT",
        "RECENCY_DAYS",
        "FREQUENCY",
        "MONETARY",
        "P_ALIVE",
        "CLV",
        "MODEL_VERSION",
    )
    return _rows(
        session,
        f"SELECT {', '.join(cat.pick(HISTORY, wanted))} FROM {cat.table(HISTORY)} WHERE CUSTOMER_ID = ? "
        f"ORDER BY SNAPSHOT_DATE DESC LIMIT {int(limit)}",
        [str(customer_id)],
    )


def customer_orders(session: Any, cat: Catalog, customer_id: str, limit: int = 20) -> pd.DataFrame:
    """The customer's latest orders from TRANSFORMED_DATA: date, channel, items, gross, cancelled, returned, net."""
    needed = ("CUSTOMER_ID", "ORDER_ID", "EVENT_TYPE", "EVENT_TS", "AMOUNT")
    if not cat.has(TRANSFORMED, *needed):
        return pd.DataFrame()
    channel = (
        "MAX(IFF(EVENT_TYPE = 'ORDER_CREATED', CHANNEL, NULL))" if cat.has(TRANSFORMED, "CHANNEL") else "NULL"
    )
    items = (
        "COUNT(DISTINCT IFF(EVENT_TYPE = 'ORDER_CREATED', PRODUCT_ID, NULL))"
        if cat.has(TRANSFORMED, "PRODUCT_ID")
        else "NULL"
    )
    amount = "COALESCE(CAST(AMOUNT AS DOUBLE), 0)"
    frame = _rows(
        session,
        "SELECT ORDER_ID, TO_DATE(MIN(IFF(EVENT_TYPE = 'ORDER_CREATED', EVENT_TS, NULL))) AS ORDER_DATE, "
        f"{channel} AS CHANNEL, {items} AS PRODUCTS, "
        f"SUM(IFF(EVENT_TYPE = 'ORDER_CREATED', {amount}, 0)) AS GROSS, "
        f"SUM(IFF(EVENT_TYPE = 'ORDER_CANCELLED', {amount}, 0)) AS CANCELLED, "
        f"SUM(IFF(EVENT_TYPE = 'ORDER_RETURNED', {amount}, 0)) AS RETURNED "
        f"FROM {cat.table(TRANSFORMED)} WHERE CUSTOMER_ID = ? AND EVENT_TYPE IN ({_marks(len(ORDER_EVENTS))}) "
        "GROUP BY ORDER_ID HAVING MIN(IFF(EVENT_TYPE = 'ORDER_CREATED', EVENT_TS, NULL)) IS NOT NULL "
        f"ORDER BY ORDER_DATE DESC, ORDER_ID DESC LIMIT {int(limit)}",
        [str(customer_id), *ORDER_EVENTS],
    )
    for column in ("GROSS", "CANCELLED", "RETURNED"):
        frame[column] = pd.to_numeric(frame[column]).astype(float).round(2)
    # the project's net order value: gross - min(cancelled, gross) - returned (features.md)
    frame["NET"] = (frame["GROSS"] - frame[["CANCELLED", "GROSS"]].min(axis=1) - frame["RETURNED"]).round(2)
    return frame


def customer_value(session: Any, cat: Catalog, customer_id: str) -> dict[str, Any]:
    """The customer's CUSTOMER_VALUE row (repeat days, ages, P(alive), expected purchases, CLV); {} if none."""
    if not cat.has(VALUE, "CUSTOMER_ID"):
        return {}
    frame = _rows(
        session,
        f"SELECT * FROM {cat.table(VALUE)} WHERE CUSTOMER_ID = ? LIMIT 1",
        [str(customer_id)],
    )
    return {} if frame.empty else {k: _none(v) for k, v in frame.iloc[0].items()}


# --- customer value model ---------------------------------------------------------------------------------


def value_models(session: Any, cat: Catalog, limit: int = 50) -> pd.DataFrame:
    """The stored customer-value model versions, newest first, PARAMS and METRICS decoded."""
    if not cat.has(VALUE_MODELS, "VERSION"):
        return pd.DataFrame()
    wanted = ("VERSION", "TRAINED_AT", "SEGMENTATION_MODEL_VERSION", "STATUS", "PARAMS", "METRICS")
    columns = cat.pick(VALUE_MODELS, wanted)
    order = "TRAINED_AT DESC NULLS LAST, VERSION DESC" if "TRAINED_AT" in columns else "VERSION DESC"
    frame = _rows(
        session,
        f"SELECT {', '.join(columns)} FROM {cat.table(VALUE_MODELS)} ORDER BY {order} LIMIT {int(limit)}",
    )
    for column in ("PARAMS", "METRICS"):
        if column in frame:
            frame[column] = [_json(v) or {} for v in frame[column]]
    return frame


def segment_outcomes(session: Any, cat: Catalog, limit: int = 2000) -> pd.DataFrame:
    """SEGMENT_OUTCOMES: what each past snapshot's segments realised against what was predicted."""
    if not cat.has(OUTCOMES, "SNAPSHOT_DATE"):
        return pd.DataFrame()
    return _rows(
        session,
        f"SELECT * FROM {cat.table(OUTCOMES)} ORDER BY SNAPSHOT_DATE DESC LIMIT {int(limit)}",
    )
