"""Segments over time: history, migrations, the activation feed, profiles and drift.

Every per-customer step runs in the warehouse (Snowpark); only per-segment aggregates (a few
rows) come back to pandas. Snapshot date = the run's reference date (REFERENCE_DATE of
CUSTOMER_FEATURES, carried into PROCESSED_DATA).
"""

from __future__ import annotations

import json
import logging
import math
from datetime import date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F
from snowflake.snowpark.types import (
    ByteType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    ShortType,
)

from customer_segmentation import value_summary
from customer_segmentation.clock import as_date
from customer_segmentation.datasets.monitoring import FeedPublication, SnapshotWrite
from customer_segmentation.drift import drift_status, psi
from customer_segmentation.errors import MissingColumnsError
from customer_segmentation.exact import exact_mean, exact_moments, moment_mean, population_sd
from customer_segmentation.model import SegmentationModel, select_active_model
from customer_segmentation.pipelines.monitoring.params import MonitoringParams
from customer_segmentation.pipelines.prediction.params import PredictionParams

logger = logging.getLogger(__name__)

NEW_SOURCE = "new"  # FROM segment of customers absent from the previous snapshot
GONE_TARGET = "gone"  # TO segment of customers absent from the current snapshot
HISTORY_COLUMNS = ["RECENCY_DAYS", "FREQUENCY", "MONETARY"]
#: Columns of PROCESSED_DATA that are not customer features (left out of the profiles).
NOT_FEATURES = {"SEGMENT_ID", "R_SCORE", "F_SCORE", "M_SCORE", "DISTANCE_TO_CENTROID"}
#: The value predictions each SEGMENT_HISTORY snapshot keeps from PROCESSED_DATA.
HISTORY_VALUE_COLUMNS = ("P_ALIVE", "EXPECTED_PURCHASES", "CLV")
#: ... and from CUSTOMER_VALUE: the prediction over the window SEGMENT_OUTCOMES measures later
#: (docs/customer-value.md), which SEGMENT_OUTCOMES compares with what happened.
HISTORY_OUTCOME_COLUMNS = ("OUTCOME_EXPECTED_PURCHASES", "OUTCOME_EXPECTED_SPEND", "OUTCOME_DAYS")
NUMERIC_TYPES = (ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType)
INTEGER_TYPES = (ByteType, ShortType, IntegerType, LongType)
FEATURE_WORDS = {
    "RECENCY_DAYS": "days since the last order",
    "FREQUENCY": "orders",
    "MONETARY": "net spend",
    "AVG_ORDER_VALUE": "average order value",
    "TENURE_DAYS": "days since the first order",
    "MEAN_DAYS_BETWEEN_ORDERS": "days between orders",
    "DISTINCT_CATEGORIES": "categories bought",
    "RETURN_RATE": "return rate",
    "CANCELLATION_RATE": "cancellation rate",
    "SPEND_LAST_90D": "spend in the last 90 days",
    "SPEND_PREV_90D": "spend in the 90 days before",
    "SPEND_TREND": "spend trend",
    # customer value (docs/customer-value.md): profiled like the features (MEDIAN_P_ALIVE, MEDIAN_CLV, ...)
    "P_ALIVE": "probability of being active",
    "EXPECTED_PURCHASES": "expected purchases",
    "EXPECTED_ORDER_VALUE": "expected order value",
    "CLV": "CLV",
}


def _require(frame: DataFrame, columns: list[str], table: str, hint: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise MissingColumnsError(f"{table} lacks column(s) {', '.join(missing)}: {hint}")


# --- the monitored model -------------------------------------------------------------------------


def select_monitored_model(model_versions: pd.DataFrame, params: PredictionParams) -> SegmentationModel:
    """The model drift is measured against: the one prediction scores with (``prediction.model_version`` or the newest)."""
    return select_active_model(model_versions, params.model_version)


# --- history ------------------------------------------------------------------------------------


def _outcome_columns(
    processed_data: DataFrame, customer_value: DataFrame | None
) -> tuple[DataFrame, list[Any]]:
    """``processed_data`` with CUSTOMER_VALUE's outcome-window prediction of the same reference date.

    The OUTCOME_* columns to select: NULL where CUSTOMER_VALUE has no such row or column (prediction
    ran without the value scoring, or a CUSTOMER_VALUE of another day). Joined under a ``_`` prefix,
    so that a PROCESSED_DATA written before they left it cannot clash.
    """
    types = {c: "int" if c == "OUTCOME_DAYS" else "double" for c in HISTORY_OUTCOME_COLUMNS}
    joined, present = value_summary.join_same_date(processed_data, customer_value, types, prefix="_")
    columns = [(F.col(f"_{c}") if c in present else F.lit(None).cast(t)).alias(c) for c, t in types.items()]
    return joined, columns


def snapshot_segments(
    processed_data: DataFrame,
    segment_history_previous: DataFrame,
    params: MonitoringParams,
    customer_value: DataFrame | None = None,
) -> tuple[SnapshotWrite, dict[str, Any]]:
    """Today's segment of every customer as a SEGMENT_HISTORY snapshot (replacing a rerun of the same date).

    P_ALIVE, EXPECTED_PURCHASES and CLV come with PROCESSED_DATA; the prediction over the outcome
    window (OUTCOME_*, for SEGMENT_OUTCOMES) from CUSTOMER_VALUE of the same reference date.
    """
    _require(
        processed_data,
        [
            "CUSTOMER_ID",
            "REFERENCE_DATE",
            "RUN_ID",
            "MODEL_VERSION",
            "SEGMENT_ID",
            "SEGMENT_LABEL",
            "RFM_SEGMENT",
            *HISTORY_COLUMNS,
        ],
        "PROCESSED_DATA",
        "rerun `kedro run --pipelines daily` (or `kedro run`) to rebuild it with the current project.",
    )
    retention = params.history_retention_days
    info = processed_data.agg(
        F.max("REFERENCE_DATE").alias("D"),
        F.min("REFERENCE_DATE").alias("D0"),
        F.max("RUN_ID").alias("R"),
        F.max("MODEL_VERSION").alias("V"),
        F.count(F.lit(1)).alias("N"),
    ).collect()[0]
    if info["N"] == 0 or info["D"] is None:
        raise ValueError("PROCESSED_DATA is empty: nothing to snapshot. Run `kedro run` first.")
    snapshot = as_date(info["D"])
    if as_date(info["D0"]) != snapshot:
        raise ValueError(
            f"PROCESSED_DATA mixes reference dates {info['D0']} and {info['D']}: rerun the pipeline."
        )
    earlier = (
        segment_history_previous.filter(F.col("SNAPSHOT_DATE") < F.lit(snapshot.isoformat()).cast("date"))
        .agg(F.max("SNAPSHOT_DATE").alias("P"))
        .collect()[0]["P"]
    )
    source, outcome = _outcome_columns(processed_data, customer_value)
    rows = source.select(
        F.lit(snapshot.isoformat()).cast("date").alias("SNAPSHOT_DATE"),
        "CUSTOMER_ID",
        "RUN_ID",
        "MODEL_VERSION",
        F.col("SEGMENT_ID").cast("int").alias("SEGMENT_ID"),
        "SEGMENT_LABEL",
        "RFM_SEGMENT",
        F.col("RECENCY_DAYS").cast("int").alias("RECENCY_DAYS"),
        F.col("FREQUENCY").cast("int").alias("FREQUENCY"),
        F.col("MONETARY").cast("double").alias("MONETARY"),
        # NULL when PROCESSED_DATA has no customer value (prediction ran without it)
        *[
            (F.col(c) if c in processed_data.columns else F.lit(None)).cast("double").alias(c)
            for c in HISTORY_VALUE_COLUMNS
        ],
        *outcome,
    )
    keep_after = snapshot - timedelta(days=int(retention)) if retention is not None else None
    if keep_after is not None and earlier is not None:
        keep_after = min(
            keep_after, as_date(earlier)
        )  # the previous snapshot stays: migrations compare with it
    snapshot_info = {
        "snapshot_date": snapshot.isoformat(),
        "previous_snapshot_date": as_date(earlier).isoformat() if earlier is not None else None,
        "run_id": str(info["R"]),
        "model_version": str(info["V"]),
        "customers": int(info["N"]),
        "keep_after": keep_after.isoformat()
        if keep_after
        else None,  # retention, applied to every snapshot table
    }
    logger.info(
        "Segment history snapshot %s (%s customers; previous snapshot %s)",
        snapshot,
        info["N"],
        snapshot_info["previous_snapshot_date"] or "none",
    )
    return SnapshotWrite(rows, keep_after=keep_after), snapshot_info


def _snapshot(history: DataFrame, day: str | None, prefix: str) -> DataFrame:
    """One snapshot of the history with prefixed columns (an empty frame when ``day`` is None)."""
    frame = history.filter(F.col("SNAPSHOT_DATE") == F.lit(day).cast("date") if day else F.lit(False))
    return frame.select(
        F.col("CUSTOMER_ID").alias(f"{prefix}CUSTOMER_ID"),
        F.col("SEGMENT_ID").alias(f"{prefix}SEGMENT_ID"),
        F.col("SEGMENT_LABEL").alias(f"{prefix}SEGMENT"),
        F.col("RFM_SEGMENT").alias(f"{prefix}RFM_SEGMENT"),
        F.col("MONETARY").alias(f"{prefix}MONETARY"),
        F.col("MODEL_VERSION").alias(f"{prefix}MODEL_VERSION"),
    )


def _pair(history: DataFrame, snapshot_info: dict[str, Any]) -> DataFrame:
    """Current and previous snapshot side by side, one row per customer in either (full outer join)."""
    cur = _snapshot(history, snapshot_info["snapshot_date"], "CUR_")
    prev = _snapshot(history, snapshot_info["previous_snapshot_date"], "PREV_")
    return cur.join(prev, cur["CUR_CUSTOMER_ID"] == prev["PREV_CUSTOMER_ID"], how="full")


def _retained(data: Any, snapshot_info: dict[str, Any]) -> SnapshotWrite:
    keep_after = snapshot_info.get("keep_after")
    return SnapshotWrite(data, keep_after=date.fromisoformat(keep_after) if keep_after else None)


def compute_migrations(segment_history: DataFrame, snapshot_info: dict[str, Any]) -> SnapshotWrite:
    """Customers and net revenue from each segment (or "new") to each segment since the previous snapshot."""
    pair = _pair(segment_history, snapshot_info)
    moved = pair.select(
        F.coalesce(F.col("PREV_SEGMENT_ID"), F.lit(-1)).alias("FROM_SEGMENT_ID"),
        F.coalesce(F.col("PREV_SEGMENT"), F.lit(NEW_SOURCE)).alias("FROM_SEGMENT"),
        F.coalesce(F.col("CUR_SEGMENT_ID"), F.lit(-1)).alias("TO_SEGMENT_ID"),
        F.coalesce(F.col("CUR_SEGMENT"), F.lit(GONE_TARGET)).alias("TO_SEGMENT"),
        F.coalesce(F.col("CUR_MONETARY"), F.lit(0.0)).alias("_NOW"),
        (
            F.coalesce(F.col("CUR_MONETARY"), F.lit(0.0)) - F.coalesce(F.col("PREV_MONETARY"), F.lit(0.0))
        ).alias("_DELTA"),
    )
    flows = moved.group_by("FROM_SEGMENT_ID", "FROM_SEGMENT", "TO_SEGMENT_ID", "TO_SEGMENT").agg(
        F.count(F.lit(1)).alias("CUSTOMERS"),
        F.round(F.sum("_NOW"), 2).alias("NET_REVENUE"),
        F.round(F.sum("_DELTA"), 2).alias("NET_REVENUE_CHANGE"),
    )
    previous = snapshot_info["previous_snapshot_date"]
    return _retained(
        flows.select(
            F.lit(snapshot_info["snapshot_date"]).cast("date").alias("SNAPSHOT_DATE"),
            (F.lit(previous).cast("date") if previous else F.lit(None).cast("date")).alias(
                "PREVIOUS_SNAPSHOT_DATE"
            ),
            F.col("FROM_SEGMENT_ID").cast("int").alias("FROM_SEGMENT_ID"),
            "FROM_SEGMENT",
            F.col("TO_SEGMENT_ID").cast("int").alias("TO_SEGMENT_ID"),
            "TO_SEGMENT",
            F.col("CUSTOMERS").cast("int").alias("CUSTOMERS"),
            F.col("NET_REVENUE").cast("double").alias("NET_REVENUE"),
            F.col("NET_REVENUE_CHANGE").cast("double").alias("NET_REVENUE_CHANGE"),
            F.lit(snapshot_info["model_version"]).alias("MODEL_VERSION"),
        ),
        snapshot_info,
    )


def summarise_flows(migrations: pd.DataFrame) -> pd.DataFrame:
    """Per segment: customers before and after, stayed, entered (from another segment or new), exited."""
    m = migrations.copy()
    m["CUSTOMERS"] = m["CUSTOMERS"].astype(int)
    rows = []
    segments = sorted(
        {(int(r.FROM_SEGMENT_ID), r.FROM_SEGMENT) for r in m.itertuples() if r.FROM_SEGMENT_ID >= 0}
        | {(int(r.TO_SEGMENT_ID), r.TO_SEGMENT) for r in m.itertuples() if r.TO_SEGMENT_ID >= 0}
    )
    for seg_id, label in segments:
        into = m[(m["TO_SEGMENT_ID"] == seg_id) & (m["TO_SEGMENT"] == label)]
        out = m[(m["FROM_SEGMENT_ID"] == seg_id) & (m["FROM_SEGMENT"] == label)]
        same = (into["FROM_SEGMENT_ID"] == seg_id) & (into["FROM_SEGMENT"] == label)
        stayed = int(into.loc[same, "CUSTOMERS"].sum())
        rows.append(
            {
                "SEGMENT_ID": seg_id,
                "SEGMENT_LABEL": label,
                "CUSTOMERS_BEFORE": int(out["CUSTOMERS"].sum()),
                "CUSTOMERS_AFTER": int(into["CUSTOMERS"].sum()),
                "STAYED": stayed,
                "ENTERED": int(into.loc[~same, "CUSTOMERS"].sum()),
                "ENTERED_NEW": int(into.loc[into["FROM_SEGMENT_ID"] < 0, "CUSTOMERS"].sum()),
                "EXITED": int(out["CUSTOMERS"].sum()) - stayed,
            }
        )
    flows = pd.DataFrame(
        rows,
        columns=[
            "SEGMENT_ID",
            "SEGMENT_LABEL",
            "CUSTOMERS_BEFORE",
            "CUSTOMERS_AFTER",
            "STAYED",
            "ENTERED",
            "ENTERED_NEW",
            "EXITED",
        ],
    )
    return flows.astype({c: "int64" for c in flows.columns if c != "SEGMENT_LABEL"})


def migration_flows(segment_migrations: DataFrame, snapshot_info: dict[str, Any]) -> SnapshotWrite:
    """Entered / exited / stayed counts per segment for the latest snapshot (SEGMENT_FLOWS)."""
    latest = segment_migrations.filter(
        F.col("SNAPSHOT_DATE") == F.lit(snapshot_info["snapshot_date"]).cast("date")
    ).to_pandas()
    flows = summarise_flows(latest)
    flows.insert(0, "SNAPSHOT_DATE", date.fromisoformat(snapshot_info["snapshot_date"]))
    flows["PREVIOUS_SNAPSHOT_DATE"] = snapshot_info["previous_snapshot_date"] or ""
    flows["MODEL_VERSION"] = snapshot_info["model_version"]
    for row in flows.itertuples():
        logger.info(
            "Segment %s %r: %s -> %s customers (stayed %s, entered %s of which new %s, exited %s)",
            row.SEGMENT_ID,
            row.SEGMENT_LABEL,
            row.CUSTOMERS_BEFORE,
            row.CUSTOMERS_AFTER,
            row.STAYED,
            row.ENTERED,
            row.ENTERED_NEW,
            row.EXITED,
        )
    return _retained(flows, snapshot_info)


def segment_changes(
    segment_history: DataFrame, snapshot_info: dict[str, Any], run_metadata: dict[str, Any]
) -> FeedPublication:
    """The activation feed's next publication: today's segment of every customer (the snapshot just written).

    The dataset (``ActivationFeedDataset``) compares it with the segments last published and
    appends one SEGMENT_CHANGES row per customer whose label differs, exactly once: a rerun, a
    same-date snapshot or a retrain publishes only what differs from what was already sent.
    """
    snapshot = date.fromisoformat(snapshot_info["snapshot_date"])
    today = segment_history.filter(F.col("SNAPSHOT_DATE") == F.lit(snapshot.isoformat()).cast("date")).select(
        "CUSTOMER_ID",
        F.col("SEGMENT_ID").cast("int").alias("SEGMENT_ID"),
        "SEGMENT_LABEL",
        "RFM_SEGMENT",
        "MODEL_VERSION",
    )
    keep_after = snapshot_info.get("keep_after")
    return FeedPublication(
        segments=today,
        snapshot_date=snapshot,
        run_id=str(run_metadata.get("run_id") or snapshot_info["run_id"]),
        published_at=datetime.fromisoformat(str(run_metadata["started_at"])),
        keep_after=date.fromisoformat(keep_after) if keep_after else None,
    )


# --- profiles -----------------------------------------------------------------------------------


def profile_features(processed_data: DataFrame) -> list[str]:
    """The numeric customer features of PROCESSED_DATA (scores, ids and distances left out)."""
    return [
        f.name.strip('"')
        for f in processed_data.schema.fields
        if isinstance(f.datatype, NUMERIC_TYPES) and f.name.strip('"') not in NOT_FEATURES
    ]


def _words(feature: str) -> str:
    return FEATURE_WORDS.get(feature, feature.lower().replace("_", " "))


def describe_profile(
    label: str,
    medians: dict[str, float],
    standout: list[tuple[str, float]],
    share: float,
    revenue_share: float,
) -> str:
    """One plain-language paragraph about a segment."""
    parts = [f"{label}: {share:.0%} of customers, {revenue_share:.0%} of net revenue."]
    typical = []
    if "RECENCY_DAYS" in medians:
        typical.append(f"last order {medians['RECENCY_DAYS']:.0f} days ago")
    if "FREQUENCY" in medians:
        typical.append(f"{medians['FREQUENCY']:.0f} order(s)")
    if "MONETARY" in medians:
        typical.append(f"{medians['MONETARY']:,.0f} net spend")
    if typical:
        parts.append("The typical member: " + ", ".join(typical) + ".")
    if standout:
        parts.append(
            "Stands out by "
            + "; ".join(f"{'higher' if d > 0 else 'lower'} {_words(f)} ({d:+.1f} sd)" for f, d in standout)
            + "."
        )
    return " ".join(parts)


def build_profiles(
    stats: pd.DataFrame,
    overall: dict[str, tuple[float, float]],
    features: list[str],
    playbook: dict[str, Any],
    top_n: int = 3,
) -> pd.DataFrame:
    """SEGMENT_PROFILES rows from per-segment aggregates (pure pandas, unit-tested).

    ``stats`` has per segment SEGMENT_ID, SEGMENT_LABEL, CUSTOMERS, REVENUE, DOMINANT_RFM_SEGMENT,
    MEDIAN_<f> and MEAN_<f> for each feature; ``overall`` maps each feature to the whole base's
    (mean, standard deviation). Standardised difference = (segment mean - base mean) / base sd.
    """
    total = float(stats["CUSTOMERS"].sum()) or 1.0
    revenue_total = float(stats["REVENUE"].clip(lower=0).sum()) or 1.0
    default_action = playbook.get("default", "Review this segment with the marketing team.")
    rows = []
    for row in stats.sort_values("SEGMENT_ID").itertuples(index=False):
        r = row._asdict()
        diffs = []
        for f in features:
            mean, sd = overall[f]
            value = r[f"MEAN_{f}"]
            if sd and not math.isnan(sd) and sd > 0 and value is not None and not math.isnan(value):
                diffs.append((f, (float(value) - mean) / sd))
        standout = sorted(diffs, key=lambda fd: (-abs(fd[1]), fd[0]))[:top_n]
        medians = {f: float(r[f"MEDIAN_{f}"]) for f in features if r[f"MEDIAN_{f}"] is not None}
        share = float(r["CUSTOMERS"]) / total
        revenue_share = max(float(r["REVENUE"]), 0.0) / revenue_total
        rfm = r["DOMINANT_RFM_SEGMENT"]
        out = {
            "SEGMENT_ID": int(r["SEGMENT_ID"]),
            "SEGMENT_LABEL": r["SEGMENT_LABEL"],
            "CUSTOMERS": int(r["CUSTOMERS"]),
            "CUSTOMER_SHARE": share,
            "REVENUE_SHARE": revenue_share,
            "DOMINANT_RFM_SEGMENT": rfm,
        }
        out.update(
            {
                f"MEDIAN_{f}": float(r[f"MEDIAN_{f}"]) if r[f"MEDIAN_{f}"] is not None else np.nan
                for f in features
            }
        )
        for i in range(top_n):
            out[f"TOP_FEATURE_{i + 1}"] = standout[i][0] if i < len(standout) else None
            out[f"TOP_FEATURE_{i + 1}_SD"] = round(standout[i][1], 4) if i < len(standout) else np.nan
        out["DESCRIPTION"] = describe_profile(r["SEGMENT_LABEL"], medians, standout, share, revenue_share)
        out["SUGGESTED_ACTION"] = str(playbook.get(rfm, default_action)) if rfm else default_action
        rows.append(out)
    return pd.DataFrame(rows)


#: Values that one MEDIAN query may hold (rows x features). MEDIAN is exact, so it keeps every value
#: of its group; the embedded warehouse (DuckDB's quantile aggregate) cannot spill that state, and
#: 17 medians over 9.5M customers (100M events) ran out of its 768 MB. Larger tables get their
#: medians a few features per query: the same values, in more (cheap) statements.
MEDIAN_VALUES_PER_QUERY = 20_000_000


def _segment_medians(processed_data: DataFrame, features: list[str], rows: int) -> pd.DataFrame:
    """MEDIAN_<feature> per SEGMENT_ID, exact, in as many queries as MEDIAN_VALUES_PER_QUERY needs."""
    per_query = max(1, MEDIAN_VALUES_PER_QUERY // max(rows, 1))
    merged = None
    for start in range(0, len(features), per_query):
        chunk = features[start : start + per_query]
        medians = (
            processed_data.group_by("SEGMENT_ID")
            .agg(*[F.median(F.col(f).cast("double")).alias(f"MEDIAN_{f}") for f in chunk])
            .to_pandas()
        )
        merged = medians if merged is None else merged.merge(medians, on="SEGMENT_ID", how="outer")
    return merged if merged is not None else pd.DataFrame({"SEGMENT_ID": []})


def _segment_value(processed_data: DataFrame) -> pd.DataFrame:
    """TOTAL_CLV and EXPECTED_REVENUE_SHARE (share of total CLV) per SEGMENT_ID.

    MEDIAN_P_ALIVE and MEDIAN_CLV come with the other medians: the value columns are profiled like
    the features (the explorer contrasts them the same way).
    """
    frame = processed_data.group_by("SEGMENT_ID").agg(*value_summary.segment_value_aggregates()).to_pandas()
    frame = value_summary.add_value_shares(frame)
    frame["SEGMENT_ID"] = frame["SEGMENT_ID"].astype(int)
    return frame[["SEGMENT_ID", "TOTAL_CLV", "EXPECTED_REVENUE_SHARE"]]


def profile_segments(
    processed_data: DataFrame, snapshot_info: dict[str, Any], params: MonitoringParams
) -> pd.DataFrame:
    """SEGMENT_PROFILES: medians, standout features, description and suggested action per segment."""
    features = profile_features(processed_data)
    integers = {
        f.name.strip('"')
        for f in processed_data.schema.fields
        if isinstance(f.datatype, INTEGER_TYPES)
        or (isinstance(f.datatype, DecimalType) and f.datatype.scale == 0)
    }
    # One pass: per segment, each feature's exact count, sum and sum of squares (exact.py); the
    # segment means come from them, and the whole base's mean and sd from their exact totals.
    per_segment = (
        processed_data.group_by("SEGMENT_ID", "SEGMENT_LABEL")
        .agg(
            F.count(F.lit(1)).alias("CUSTOMERS"),
            # net spend (cents) summed exact: a SUM of doubles depends on the order rows arrive in
            F.sum(F.col("MONETARY").cast(DecimalType(18, 2))).alias("REVENUE"),
            *[m for f in features for m in exact_moments(F.col(f), f"_{f}", integer=f in integers)],
        )
        .to_pandas()
    )
    overall = {}
    for f in features:
        n, s1, s2 = (per_segment[f"_{f}_{part}"] for part in ("N", "S1", "S2"))
        per_segment[f"MEAN_{f}"] = [moment_mean(a, b) for a, b in zip(n, s1)]
        # fsum: the correctly rounded total, so the base's figures do not depend on the segments' order
        total_n, total_s1, total_s2 = (
            math.fsum(float(v) for v in col if v is not None and not pd.isna(v)) for col in (n, s1, s2)
        )
        mean, sd = moment_mean(total_n, total_s1), population_sd(total_n, total_s1, total_s2)
        overall[f] = (0.0 if math.isnan(mean) else mean, 0.0 if math.isnan(sd) else sd)
    per_segment = per_segment.drop(columns=[c for c in per_segment.columns if c.startswith("_")])
    medians = _segment_medians(processed_data, features, int(per_segment["CUSTOMERS"].sum()))
    per_segment = per_segment.merge(medians, on="SEGMENT_ID", how="left")
    rfm = (
        processed_data.group_by("SEGMENT_ID", "RFM_SEGMENT")
        .agg(F.count(F.lit(1)).alias("N"))
        .to_pandas()
        .sort_values(["SEGMENT_ID", "N", "RFM_SEGMENT"], ascending=[True, False, True])
        .drop_duplicates("SEGMENT_ID")
        .set_index("SEGMENT_ID")["RFM_SEGMENT"]
    )
    per_segment["DOMINANT_RFM_SEGMENT"] = per_segment["SEGMENT_ID"].map(rfm)
    for column in per_segment.columns:
        if column.startswith(("MEDIAN_", "MEAN_")) or column == "REVENUE":
            per_segment[column] = pd.to_numeric(per_segment[column], errors="coerce").astype(float)
    profiles = build_profiles(
        per_segment,
        overall,
        features,
        dict(params.playbook),
        params.profile_top_features,
    )
    if all(c in processed_data.columns for c in ("P_ALIVE", "CLV")):
        profiles = profiles.merge(_segment_value(processed_data), on="SEGMENT_ID", how="left")
    profiles.insert(0, "SNAPSHOT_DATE", date.fromisoformat(snapshot_info["snapshot_date"]))
    profiles["MODEL_VERSION"] = snapshot_info["model_version"]
    return profiles


# --- drift --------------------------------------------------------------------------------------


def _bin_counts(frame: DataFrame, bins: dict[str, Any], total: int) -> dict[str, list[float]]:
    """Share of ``frame``'s rows in each reference bin of each feature, in one aggregate query.

    A value's bin is the number of edges <= value (as ``drift.bin_index``; NULL counts as 0).
    With the edges sorted, ``COUNT(value >= edge_i)`` is the number of rows in bins i..m, so
    one comparison per edge gives every bin (the difference of two neighbours) instead of one
    expression per bin summing a comparison per edge.
    """
    aggs, plan = [], {}
    for feature, spec in bins.items():
        edges = [float(e) for e in spec["edges"]]
        if edges != sorted(set(edges)):
            raise ValueError(f"drift reference edges of {feature} must be sorted and distinct, got {edges}")
        x = F.coalesce(F.col(feature).cast("double"), F.lit(0.0))
        plan[feature] = []
        for edge in edges:
            plan[feature].append(f"B{len(aggs)}")
            aggs.append(F.sum(F.iff(x >= F.lit(edge), F.lit(1), F.lit(0))).alias(plan[feature][-1]))
    row = frame.agg(*aggs).collect()[0].as_dict() if aggs else {}
    shares = {}
    for feature, names in plan.items():
        at_least = [total] + [int(row[name] or 0) for name in names] + [0]
        counts = [at_least[i] - at_least[i + 1] for i in range(len(names) + 1)]
        shares[feature] = [c / total if total else 0.0 for c in counts]
    return shares


def measure_drift(
    processed_data: DataFrame,
    model: SegmentationModel,
    snapshot_info: dict[str, Any],
    params: MonitoringParams,
    run_metadata: dict[str, Any],
) -> pd.DataFrame:
    """SEGMENT_DRIFT row of this run: feature PSI, segment shares and distances vs training, and a status."""
    reference = model.reference()
    thresholds = params.drift_thresholds.model_dump()
    counts = (
        processed_data.group_by("SEGMENT_ID")
        # exact: the mean distance is the same whatever order the rows are added in (exact.py)
        .agg(
            F.count(F.lit(1)).alias("N"), exact_mean(F.col("DISTANCE_TO_CENTROID").cast("double")).alias("D")
        )
        .to_pandas()
    )
    total = int(counts["N"].sum())
    psi_by_feature: dict[str, float] = {}
    shares: dict[str, dict[str, float]] = {}
    max_shift, distance_now, distance_then = float("nan"), float("nan"), float("nan")
    if reference:
        for f in reference["bins"]:
            if f not in processed_data.columns:
                raise MissingColumnsError(
                    f"PROCESSED_DATA lacks the model feature {f}: rerun the daily pipeline."
                )
        now_by_feature = _bin_counts(processed_data, reference["bins"], total)
        for f, spec in reference["bins"].items():
            psi_by_feature[f] = round(psi(spec["proportions"], now_by_feature[f]), 6)
        by_id = counts.set_index(counts["SEGMENT_ID"].astype(int))
        shifts = []
        for pos, seg_id in enumerate(model.ids()):
            share_now = float(by_id["N"].get(seg_id, 0)) / total if total else 0.0
            share_then = float(reference["segment_shares"][pos])
            d_now = by_id["D"].get(seg_id)
            d_then = reference["mean_distance"][pos]
            shares[str(seg_id)] = {
                "share_now": round(share_now, 6),
                "share_training": round(share_then, 6),
                "mean_distance_now": None if d_now is None or pd.isna(d_now) else round(float(d_now), 6),
                "mean_distance_training": None
                if d_then is None or math.isnan(d_then)
                else round(float(d_then), 6),
            }
            shifts.append(abs(share_now - share_then))
        max_shift = max(shifts) if shifts else float("nan")
        distance_now = (
            float((counts["N"] * counts["D"].astype(float)).sum() / total) if total else float("nan")
        )
        # NaN is stored as JSON null in the warehouse record
        overall = reference.get("overall_mean_distance")
        distance_then = float(overall) if overall is not None else float("nan")
    max_psi = max(psi_by_feature.values()) if psi_by_feature else float("nan")
    max_feature = max(psi_by_feature, key=psi_by_feature.get) if psi_by_feature else None
    ratio = distance_now / distance_then if distance_then and not math.isnan(distance_then) else float("nan")
    if reference:
        status, reasons = drift_status(max_psi, max_shift, ratio, thresholds)
    else:
        status, reasons = (
            "watch",
            ["the model carries no training reference: retrain it to enable drift checks"],
        )
    trained = as_date(model.trained_at)
    age = (date.fromisoformat(str(run_metadata["started_at"])[:10]) - trained).days
    row = {
        "RUN_ID": str(run_metadata.get("run_id") or snapshot_info["run_id"]),
        "MEASURED_AT": pd.Timestamp(run_metadata["started_at"]),
        "SNAPSHOT_DATE": date.fromisoformat(snapshot_info["snapshot_date"]),
        "MODEL_VERSION": model.version,
        "MODEL_AGE_DAYS": int(age),
        "CUSTOMERS": total,
        "TRAINING_CUSTOMERS": int(reference.get("customers", 0)),
        "MAX_PSI": max_psi,
        "MAX_PSI_FEATURE": max_feature,
        "FEATURE_PSI": json.dumps(psi_by_feature, sort_keys=True),
        "SEGMENTS": json.dumps(shares, sort_keys=True),
        "MAX_SHARE_SHIFT": max_shift,
        "MEAN_DISTANCE": distance_now,
        "TRAINING_MEAN_DISTANCE": distance_then,
        "DISTANCE_RATIO": ratio,
        "STATUS": status,
        "REASONS": "; ".join(reasons),
    }
    log = logger.warning if status != "ok" else logger.info
    log(
        "Drift status %s for model %s (max PSI %.3f on %s, max share shift %.3f, distance ratio %.2f)%s",
        status.upper(),
        model.version,
        max_psi,
        max_feature,
        max_shift,
        ratio,
        f": {row['REASONS']}" if reasons else "",
    )
    return pd.DataFrame([row])


# --- charts -------------------------------------------------------------------------------------


def plot_migration_sankey(segment_migrations: DataFrame, snapshot_info: dict[str, Any]) -> Any:
    """Sankey of the latest migration: previous segment (or new) on the left, current on the right."""
    import plotly.graph_objects as go

    m = (
        segment_migrations.filter(
            F.col("SNAPSHOT_DATE") == F.lit(snapshot_info["snapshot_date"]).cast("date")
        )
        .to_pandas()
        .sort_values(["FROM_SEGMENT", "TO_SEGMENT"])
    )
    left = sorted(set(m["FROM_SEGMENT"]))
    right = sorted(set(m["TO_SEGMENT"]))
    nodes = [f"{s} ({snapshot_info['previous_snapshot_date'] or 'before'})" for s in left] + [
        f"{s} ({snapshot_info['snapshot_date']})" for s in right
    ]
    fig = go.Figure(
        go.Sankey(
            node={"label": nodes, "pad": 12},
            link={
                "source": [left.index(s) for s in m["FROM_SEGMENT"]],
                "target": [len(left) + right.index(s) for s in m["TO_SEGMENT"]],
                "value": m["CUSTOMERS"].astype(int).tolist(),
            },
        )
    )
    fig.update_layout(
        title=f"Segment migration {snapshot_info['previous_snapshot_date'] or '(first snapshot)'} -> "
        f"{snapshot_info['snapshot_date']} (customers)"
    )
    return fig


def plot_segment_shares(segment_history: DataFrame) -> Any:
    """Share of customers in each segment, snapshot by snapshot (aggregated in the warehouse).

    One stacked area per segment (plotly graph objects; a segment absent from a snapshot has 0 there).
    """
    import plotly.graph_objects as go

    shares = (
        segment_history.group_by("SNAPSHOT_DATE", "SEGMENT_LABEL")
        .agg(F.count(F.lit(1)).alias("CUSTOMERS"))
        .to_pandas()
        .sort_values(["SNAPSHOT_DATE", "SEGMENT_LABEL"])
    )
    shares["SHARE"] = shares["CUSTOMERS"] / shares.groupby("SNAPSHOT_DATE")["CUSTOMERS"].transform("sum")
    table = shares.pivot(index="SNAPSHOT_DATE", columns="SEGMENT_LABEL", values="SHARE").fillna(0.0)
    fig = go.Figure(
        [
            go.Scatter(
                x=list(table.index),
                y=table[label].tolist(),
                name=str(label),
                mode="lines+markers",
                stackgroup="shares",
                hovertemplate=f"{label}<br>%{{x}}: %{{y:.1%}}<extra></extra>",
            )
            for label in table.columns
        ]
    )
    fig.update_layout(
        title="Segment shares over time (SEGMENT_HISTORY)",
        yaxis_tickformat=".0%",
        xaxis_title="SNAPSHOT_DATE",
        yaxis_title="SHARE",
        legend_title_text="SEGMENT_LABEL",
    )
    return fig
