"""In-warehouse scoring: the fitted transform and centroids compiled into Snowpark expressions.

For each segment k the squared distance ``sum_j ((f_j(x) - mean_j) / scale_j - c_kj)^2`` is one
column expression (``f_j`` is ``ln(1 + max(x, 0))`` for log features); the segment is the first
k with the smallest distance, as in scikit-learn. No customer row leaves the warehouse.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd
from snowflake.snowpark import DataFrame
from snowflake.snowpark import functions as F

from customer_segmentation import value_summary
from customer_segmentation.errors import MissingColumnsError
from customer_segmentation.exact import exact_mean, exact_sum
from customer_segmentation.model import SegmentationModel, select_active_model
from customer_segmentation.pipelines.prediction.params import PredictionParams

logger = logging.getLogger(__name__)


def scaled_feature_columns(model: SegmentationModel) -> list[Any]:
    """The model's transform as one Snowpark expression per feature."""
    columns = []
    for j, name in enumerate(model.features):
        x = F.coalesce(F.col(name).cast("double"), F.lit(0.0))
        if name in model.log_features:
            x = F.ln(F.lit(1.0) + F.greatest(x, F.lit(0.0)))
        columns.append((x - F.lit(float(model.means[j]))) / F.lit(float(model.scales[j])))
    return columns


#: The columns scoring adds after a customer's features, in order.
SEGMENT_COLUMNS = ("SEGMENT_ID", "SEGMENT_LABEL", "DISTANCE_TO_CENTROID")


def _require_features(columns: list[str], model: SegmentationModel) -> None:
    missing = [f for f in model.features if f not in columns]
    if missing:
        raise MissingColumnsError(
            f"CUSTOMER_FEATURES lacks the model's feature(s) {', '.join(missing)}: rerun "
            "`kedro run --pipelines rfm_features`, or retrain with `kedro run` if the features changed."
        )


def _with_segments(
    frame: DataFrame, leading: list[str], trailing: list[str], model: SegmentationModel
) -> DataFrame:
    """``leading``, SEGMENT_ID, SEGMENT_LABEL, DISTANCE_TO_CENTROID, then ``trailing`` (columns of ``frame``).

    Built as projections of named columns only: Snowpark stacks them without asking the warehouse
    for a schema, where each ``with_columns`` / ``drop`` on the growing plan cost a DESCRIBE of it
    (the distance expressions make it ~10 KB of SQL: 12 DESCRIBEs, 0.3 s of a 10M-event run).
    """
    carried = [F.col(c) for c in (*leading, *trailing)]
    z_names = [f"_Z{j}" for j in range(len(model.features))]
    scaled = frame.select(*carried, *[x.alias(z) for z, x in zip(z_names, scaled_feature_columns(model))])
    d_names = [f"_D{k}" for k in range(model.k)]
    distances = []
    for k in range(model.k):
        terms = [
            (F.col(z) - F.lit(float(model.centroids[k, j])))
            * (F.col(z) - F.lit(float(model.centroids[k, j])))
            for j, z in enumerate(z_names)
        ]
        total = terms[0]
        for term in terms[1:]:
            total = total + term
        distances.append(total.alias(d_names[k]))
    measured = scaled.select(*carried, *distances)
    smallest = F.least(*[F.col(d) for d in d_names]) if model.k > 1 else F.col(d_names[0])
    nearest = measured.select(*carried, *[F.col(d) for d in d_names], smallest.alias("_DMIN"))
    ids = model.ids()  # stable SEGMENT_IDs (kept across retrains), not centroid positions
    # the first k at the smallest distance, as scikit-learn picks; its label is the label of that id
    segment = F.when(F.col(d_names[0]) == F.col("_DMIN"), F.lit(ids[0]))
    label = F.when(F.col(d_names[0]) == F.col("_DMIN"), F.lit(model.labels[0]))
    for k in range(1, model.k):
        segment = segment.when(F.col(d_names[k]) == F.col("_DMIN"), F.lit(ids[k]))
        label = label.when(F.col(d_names[k]) == F.col("_DMIN"), F.lit(model.labels[k]))
    return nearest.select(
        *[F.col(c) for c in leading],
        segment.alias("SEGMENT_ID"),
        label.alias("SEGMENT_LABEL"),
        F.sqrt(F.greatest(F.col("_DMIN"), F.lit(0.0))).alias("DISTANCE_TO_CENTROID"),
        *[F.col(c) for c in trailing],
    )


def assign_segments(customers: DataFrame, model: SegmentationModel) -> DataFrame:
    """Add SEGMENT_ID, SEGMENT_LABEL and DISTANCE_TO_CENTROID (computed in the warehouse)."""
    columns = customers.columns
    _require_features(columns, model)
    return _with_segments(customers, [c for c in columns if c not in SEGMENT_COLUMNS], [], model)


#: The customer-value scores carried next to each customer's segment (CUSTOMER_VALUE, docs/customer-value.md).
VALUE_COLUMNS = ("P_ALIVE", "EXPECTED_PURCHASES", "EXPECTED_ORDER_VALUE", "CLV")
#: What scoring adds after the value columns.
HISTORY_FLAGS = ("PREVIOUS_SEGMENT_LABEL", "IS_NEW_CUSTOMER", "MODEL_VERSION")


def score_customers(
    customer_features: DataFrame,
    segmentation_model: SegmentationModel,
    previous_results: DataFrame,
    customer_value: DataFrame | None = None,
) -> DataFrame:
    """Every customer with its segment (and its customer value); customers with no segment before are flagged as new.

    P_ALIVE, EXPECTED_PURCHASES, EXPECTED_ORDER_VALUE and CLV come from the value scoring of the
    same reference date: a CUSTOMER_VALUE of another date (a stale table, when prediction runs
    alone) or none at all leaves them NULL rather than mixing dates. Its prediction over the outcome
    window (OUTCOME_*) stays there (the SEGMENT_HISTORY snapshot reads it from CUSTOMER_VALUE).

    The joins (CUSTOMER_VALUE of the same date, the previous results) come first, on the plain
    tables, and the segment's distances are computed over their result: joining after them made
    Snowpark DESCRIBE the whole distance query on each side of each join.
    """
    columns = customer_features.columns
    _require_features(columns, segmentation_model)
    leading = [c for c in columns if c not in (*SEGMENT_COLUMNS, *VALUE_COLUMNS, *HISTORY_FLAGS)]
    frame, values = value_summary.join_same_date(
        customer_features, customer_value, dict.fromkeys(VALUE_COLUMNS, "double")
    )
    previous = previous_results.select(
        F.col("CUSTOMER_ID").alias("_PREV_ID"), F.col("SEGMENT_LABEL").alias("PREVIOUS_SEGMENT_LABEL")
    )
    frame = frame.join(previous, frame["CUSTOMER_ID"] == previous["_PREV_ID"], how="left")
    frame = frame.select(
        *[F.col(c) for c in (*leading, *values)],
        F.col("PREVIOUS_SEGMENT_LABEL"),
        F.col("_PREV_ID").is_null().alias("IS_NEW_CUSTOMER"),
        F.lit(segmentation_model.version).alias("MODEL_VERSION"),
    )
    return _with_segments(frame, leading, [*values, *HISTORY_FLAGS], segmentation_model)


def base_labels(model: SegmentationModel) -> list[str]:
    """The classic RFM segment each label is named after (models saved before it was stored: label minus qualifier)."""
    stored = list(getattr(model, "base_labels", ()) or ())
    return stored if len(stored) == model.k else [label.split(" (")[0] for label in model.labels]


def summarise_segments(scored_customers: DataFrame, segmentation_model: SegmentationModel) -> pd.DataFrame:
    """Customers, new customers, net revenue and label faithfulness per segment (aggregated in the warehouse)."""
    if "RFM_SEGMENT" not in scored_customers.columns:
        raise MissingColumnsError(
            "The scored customers lack RFM_SEGMENT (needed to report how faithful each label is): rerun "
            "`kedro run --pipelines rfm_features`, then `kedro run --pipelines prediction`."
        )
    # keyed by label (unique per model), so it holds whatever ids SEGMENT_ID carries
    base_of = dict(zip(segmentation_model.labels, base_labels(segmentation_model)))
    base = None
    for label, name in base_of.items():
        cond = F.col("SEGMENT_LABEL") == F.lit(label)
        base = F.when(cond, F.lit(name)) if base is None else base.when(cond, F.lit(name))
    # a NULL RFM_SEGMENT compares to NULL, which IFF treats as false: such a customer counts as not faithful
    faithful = F.iff(F.col("RFM_SEGMENT") == base, F.lit(1), F.lit(0))
    has_value = all(c in scored_customers.columns for c in ("P_ALIVE", "CLV"))
    value_aggs = value_summary.segment_value_aggregates() if has_value else []
    frame = (
        scored_customers.group_by("SEGMENT_ID", "SEGMENT_LABEL")
        .agg(
            F.count(F.lit(1)).alias("CUSTOMERS"),
            F.sum(faithful).alias("FAITHFUL_CUSTOMERS"),
            F.sum(F.iff(F.col("IS_NEW_CUSTOMER"), F.lit(1), F.lit(0))).alias("NEW_CUSTOMERS"),
            # exact sums (exact.py): the same whatever order the rows are added in
            exact_sum(F.col("MONETARY"), 2).alias("REVENUE"),
            exact_mean(F.col("RECENCY_DAYS")).alias("MEAN_RECENCY_DAYS"),
            exact_mean(F.col("FREQUENCY")).alias("MEAN_FREQUENCY"),
            exact_mean(F.col("MONETARY")).alias("MEAN_MONETARY"),
            *value_aggs,
        )
        .to_pandas()
    )
    if has_value:
        frame = value_summary.add_value_shares(frame)
    for column in ("REVENUE", "MEAN_RECENCY_DAYS", "MEAN_FREQUENCY", "MEAN_MONETARY"):
        frame[column] = frame[column].astype(float)
    frame["CUSTOMER_SHARE"] = frame["CUSTOMERS"] / frame["CUSTOMERS"].sum()
    total = frame["REVENUE"].clip(lower=0).sum()
    frame["REVENUE_SHARE"] = frame["REVENUE"].clip(lower=0) / total if total else 0.0
    frame["FAITHFUL_CUSTOMERS"] = frame["FAITHFUL_CUSTOMERS"].astype(int)
    frame["BASE_LABEL"] = frame["SEGMENT_LABEL"].map(base_of)
    frame["FAITHFUL_SHARE"] = frame["FAITHFUL_CUSTOMERS"] / frame["CUSTOMERS"]
    # SEGMENT_ID is a stable id (kept across retrains), not a centroid position
    frame["DESCRIPTION"] = [
        segmentation_model.descriptions[segmentation_model.position_of(int(i))] for i in frame["SEGMENT_ID"]
    ]
    frame["MODEL_VERSION"] = segmentation_model.version
    logger.info(
        "Scored %s customers into %s segments; %.0f%% hold the classic RFM segment their label names",
        int(frame["CUSTOMERS"].sum()),
        len(frame),
        100 * frame["FAITHFUL_CUSTOMERS"].sum() / max(frame["CUSTOMERS"].sum(), 1),
    )
    return frame.sort_values("SEGMENT_ID").reset_index(drop=True)


def plot_segment_sizes(segment_summary: pd.DataFrame) -> Any:
    """Share of customers vs share of net revenue, per segment."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_trace(
        go.Bar(x=segment_summary["SEGMENT_LABEL"], y=segment_summary["CUSTOMER_SHARE"], name="customers")
    )
    fig.add_trace(
        go.Bar(x=segment_summary["SEGMENT_LABEL"], y=segment_summary["REVENUE_SHARE"], name="net revenue")
    )
    fig.update_layout(
        barmode="group",
        title="Segment sizes and revenue share (all scored customers)",
        yaxis_tickformat=".0%",
    )
    return fig


def select_model(model_versions: pd.DataFrame, params: PredictionParams) -> SegmentationModel:
    """The stored model to score with: ``prediction.model_version`` if set, else the newest."""
    return select_active_model(model_versions, params.model_version)


def segment_summary_rows(segment_summary: pd.DataFrame, run_metadata: dict[str, Any]) -> pd.DataFrame:
    """The segment summary keyed by run id, for the SEGMENT_SUMMARY table (one set of rows per run)."""
    return segment_summary.assign(
        RUN_ID=str(run_metadata.get("run_id") or ""),
        SCORED_AT=pd.Timestamp(run_metadata["started_at"]),
    )
