"""Customer value: summary in the warehouse, BG/NBD + Gamma-Gamma fitted on a bounded sample, scored in SQL.

Thin wrappers over the domain floor: ``value_summary`` (x, t_x, T, mean repeat spend),
``value_model`` (fits, closed forms, registry record) and ``value_sql`` (in-warehouse scoring).
Per-customer work stays in the warehouse; what comes to pandas is bounded: the fit sample
(``customer_value.sample_size`` rows at most), and per-segment, per-day or per-frequency aggregates
(docs/customer-value.md).
"""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from snowflake.snowpark import DataFrame, Window
from snowflake.snowpark import functions as F

from customer_segmentation import value_summary
from customer_segmentation.clock import as_date
from customer_segmentation.datasets.customer_aggregates import CustomerAggregates
from customer_segmentation.datasets.monitoring import SnapshotWrite
from customer_segmentation.datasets.value_model_table import ValueModelWrite
from customer_segmentation.errors import MissingModelError, MissingTableError
from customer_segmentation.exact import exact_mean, exact_sum
from customer_segmentation.model import active_version
from customer_segmentation.pipelines.customer_value.params import CustomerValueParams
from customer_segmentation.pipelines.prediction.params import PredictionParams
from customer_segmentation.pipelines.training.params import TrainingParams

if (
    TYPE_CHECKING
):  # value_model loads scipy: imported where it is used, so registering the pipelines stays light
    from customer_segmentation.value_model import FitResult, ValueModel

logger = logging.getLogger(__name__)

#: The CUSTOMER_VALUE columns, in order.
VALUE_COLUMNS = (
    *value_summary.SUMMARY_COLUMNS,
    "P_ALIVE",
    "EXPECTED_PURCHASES",
    "EXPECTED_ORDER_VALUE",
    "CLV",
    "HORIZON_DAYS",
    "OUTCOME_DAYS",
    "OUTCOME_EXPECTED_PURCHASES",
    "OUTCOME_EXPECTED_SPEND",
    "VALUE_MODEL_VERSION",
    "VALUE_MISSING_REASON",
)
SCORE_COLUMNS = ("P_ALIVE", "EXPECTED_PURCHASES", "EXPECTED_ORDER_VALUE", "CLV")
#: The prediction over the window SEGMENT_OUTCOMES measures (``holdout_days`` after the reference date).
OUTCOME_COLUMNS = ("OUTCOME_EXPECTED_PURCHASES", "OUTCOME_EXPECTED_SPEND")
#: Calibration frequencies shown one by one in the holdout's conditional-expectation table; higher ones are pooled.
MAX_FREQUENCY_ROW = 7
#: Points of the cumulative tracking series (one every TRACKING_STEP_DAYS days).
TRACKING_STEP_DAYS = 7


@dataclass(frozen=True)
class NoValueModel:
    """What the fit hands on when it failed and no version exists (a Kedro dataset refuses None).

    Stored as a FAILED version of CUSTOMER_VALUE_MODELS (its reason where the holdout report would be),
    and written into CUSTOMER_VALUE's VALUE_MISSING_REASON: the missing value says why it is missing.
    """

    reason: str
    version: str = "failed"
    trained_at: str | None = None
    segmentation_model_version: str | None = None
    settings: dict[str, Any] | None = None

    def to_record(self) -> dict[str, Any]:
        """A CUSTOMER_VALUE_MODELS row with STATUS FAILED: never scores, never pinned, says why."""
        return {
            "VERSION": self.version,
            "TRAINED_AT": self.trained_at,
            "SEGMENTATION_MODEL_VERSION": self.segmentation_model_version,
            "STATUS": "FAILED",
            "PARAMS": {"failed": self.reason, "settings": dict(self.settings or {})},
            "METRICS": {
                "failed": self.reason,
                "holdout": {
                    "skipped": f"no value model: the fit failed. {self.reason}",
                    "large_error": False,
                },
            },
        }


def _lit_date(day: date) -> Any:
    return F.lit(day.isoformat()).cast("date")


# --- the summary --------------------------------------------------------------------------------


def summarise_customers(
    customer_aggregates: CustomerAggregates, customer_features: DataFrame
) -> tuple[DataFrame, str]:
    """Every customer's (X, T_X, T, MEAN_VALUE) at the features' reference date, and that date.

    From CUSTOMER_AGGREGATES' rollup columns (kept incrementally by rfm_features); when the
    aggregates hold order days on or after the reference date (a reference date in the past),
    from the stored order days before it instead.
    """
    if customer_aggregates.customers is None or customer_aggregates.daily_spend is None:
        raise MissingTableError(
            "CUSTOMER_AGGREGATES is missing: run `kedro run --pipelines rfm_features` (or `kedro run`)."
        )
    missing = [c for c in value_summary.ROLLUP_COLUMNS if c not in customer_aggregates.customers.columns]
    if missing:
        raise MissingTableError(
            f"CUSTOMER_AGGREGATES lacks the customer-value column(s) {', '.join(missing)}: "
            "run `kedro run --pipelines rfm_features` to rebuild it."
        )
    found = customer_features.agg(F.max("REFERENCE_DATE").alias("D")).collect()[0][0]
    if found is None:
        raise ValueError("CUSTOMER_FEATURES is empty: no customer to value. Run `kedro run` first.")
    ref = as_date(found)
    state = customer_aggregates.state
    if (
        state is not None
        and state.max_event_ts is not None
        and state.max_event_ts < datetime.combine(ref, time())
    ):
        rollup = value_summary.rollup_from_aggregates(customer_aggregates.customers)
    else:
        logger.info(
            "Customer value: reference date %s is not after the latest event; summarised from the order days before it",
            ref,
        )
        rollup = value_summary.transaction_rollup(
            value_summary.days_before(customer_aggregates.daily_spend, ref)
        )
    return value_summary.summary_at(rollup, ref), ref.isoformat()


# --- the fit ------------------------------------------------------------------------------------


def fit_sample(summary: DataFrame, params: CustomerValueParams) -> tuple[pd.DataFrame, int]:
    """A deterministic sample of at most ``sample_size`` customers (X, T_X, T, MEAN_VALUE), and the population size.

    The same customers on every run and target: the first ``sample_size`` in MD5(seed + id) order.
    """
    total = int(summary.count())
    frame = summary.select("CUSTOMER_ID", "X", "T_X", "T", "MEAN_VALUE")
    if total > params.sample_size:
        order = F.md5(F.concat(F.lit(str(params.random_state)), F.col("CUSTOMER_ID")))
        frame = frame.sort(order).limit(params.sample_size)
    sample = frame.to_pandas().sort_values("CUSTOMER_ID").reset_index(drop=True)
    for column in ("X", "T_X", "T"):
        sample[column] = pd.to_numeric(sample[column]).astype(np.int64)
    sample["MEAN_VALUE"] = pd.to_numeric(sample["MEAN_VALUE"], errors="coerce").astype(float)
    return sample, total


def grouped(sample: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """Identical rows of ``columns`` collapsed into one with their count (WEIGHT): an exact, faster likelihood."""
    return (
        sample.groupby(columns, sort=True, dropna=False)
        .size()
        .rename("WEIGHT")
        .reset_index()
        .sort_values(columns)
        .reset_index(drop=True)
    )


def fit_models(sample: pd.DataFrame) -> tuple[FitResult, FitResult]:
    """BG/NBD on (X, T_X, T) and Gamma-Gamma on the repeat customers' (X, MEAN_VALUE), both weighted."""
    from customer_segmentation import value_model as vm

    rows = grouped(sample, ["X", "T_X", "T"])
    bgnbd = vm.fit_bgnbd(
        rows["X"].to_numpy(float),
        rows["T_X"].to_numpy(float),
        rows["T"].to_numpy(float),
        rows["WEIGHT"].to_numpy(float),
    )
    # boundary solutions (no dropout signal, no spread) are refused inside the fits, in one place each
    repeat = sample[sample["X"] > 0]  # zero or negative mean spends: counted and left out by the fit
    spend = grouped(repeat, ["X", "MEAN_VALUE"])
    gamma_gamma = vm.fit_gamma_gamma(
        spend["X"].to_numpy(float), spend["MEAN_VALUE"].to_numpy(float), spend["WEIGHT"].to_numpy(float)
    )
    return bgnbd, gamma_gamma


def active_segmentation_version(
    segmentation_models: pd.DataFrame, prediction: PredictionParams
) -> str | None:
    """The segmentation model version prediction scores with (None before the first training)."""
    try:
        return active_version(segmentation_models, prediction.model_version)
    except MissingModelError:
        return None


def refit_reason(
    active: ValueModel | None,
    segmentation_version: str | None,
    training: TrainingParams,
    today: date,
) -> str | None:
    """Why the value model must be fitted now, or None to keep ``active`` (pure; unit-tested).

    Fitted when there is none, when the segmentation model changed (a training run or a retrain of
    the daily job), or when it is ``max_age_days`` old under ``training.retrain_policy``.
    """
    if active is None:
        return "no customer-value model in the warehouse yet"
    if segmentation_version is not None and active.segmentation_model_version != segmentation_version:
        return f"the segmentation model changed ({active.segmentation_model_version or 'none'} -> {segmentation_version})"
    _, max_age = training.retrain_rule()
    age = (today - as_date(active.trained_at)).days
    if max_age is not None and age >= max_age:
        return f"the value model is {age} days old (training.retrain_policy max_age_days: {max_age})"
    return None


def fit_value_model(  # noqa: PLR0913 - the decision needs each of these
    value_summary_frame: DataFrame,
    reference_date: str,
    customer_aggregates: CustomerAggregates,
    value_models: pd.DataFrame,
    segmentation_models: pd.DataFrame,
    params: CustomerValueParams,
    training: TrainingParams,
    prediction: PredictionParams,
    run_metadata: dict[str, Any],
) -> Any:
    """The value model (a ``value_model.ValueModel``) to score with: the pinned one, the active one, or a new fit (with its holdout evidence).

    When a fit fails (``ValueFitError``: the data cannot identify the model) the active version keeps
    scoring, or, without one, a :class:`NoValueModel`: the value columns stay empty and the run log says why, rather
    than the whole run (segments included) failing.
    """
    from customer_segmentation import value_model as vm

    pinned = params.model_version
    active = vm.active_value_model(value_models, pinned)
    if pinned is not None:
        assert active is not None  # an unknown pin raises in active_value_model
        logger.info("customer_value.model_version pins %s: scoring with it, no refit", pinned)
        return active
    segmentation_version = active_segmentation_version(segmentation_models, prediction)
    today = as_date(run_metadata["started_at"])
    reason = refit_reason(active, segmentation_version, training, today)
    if reason is None:
        assert active is not None
        logger.info("Keeping customer-value model %s (fitted %s)", active.version, active.trained_at)
        return active
    logger.info("Fitting the customer-value model: %s", reason)
    ref = date.fromisoformat(reference_date)
    sample, population = fit_sample(value_summary_frame, params)
    version = str(run_metadata.get("run_id") or datetime.now(UTC).strftime("%Y-%m-%dT%H.%M.%S.%fZ"))
    settings = _settings(params, ref, population, len(sample))
    try:
        bgnbd, gamma_gamma = fit_models(sample)
    except vm.ValueFitError as exc:
        # the segments do not depend on the value model: the run goes on, saying loudly what is missing
        return _fit_failed(exc, active, version, run_metadata, segmentation_version, settings, len(sample))
    model = vm.ValueModel(
        version=version,
        trained_at=str(run_metadata["started_at"]),
        segmentation_model_version=segmentation_version,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        settings=settings,
        metrics={"fitted_because": reason},
    )
    _log_fit(model)
    holdout = holdout_report(customer_aggregates.daily_spend, ref, params)
    model.metrics = {**model.metrics, "holdout": holdout}
    _warn_on_holdout(holdout, params)
    return model


def _fit_failed(  # noqa: PLR0913 - what the warning and the FAILED record say
    exc: Exception,
    active: ValueModel | None,
    version: str,
    run_metadata: dict[str, Any],
    segmentation_version: str | None,
    settings: dict[str, Any],
    sampled: int,
) -> Any:
    """The active version when there is one, else a NoValueModel; a WARNING saying what failed, why, and
    how to fix it (the ValueFitError's message names the cause in the data and what to do)."""
    what = f"the customer-value fit (BG/NBD + Gamma-Gamma on {sampled:,} sampled customers) failed"
    fix = (
        "Fix the data as the reason says, then run `kedro run` (or `kedro run --pipelines customer_value` "
        "then `kedro run --pipelines prediction`); see docs/customer-value.md, 'When the fit fails'."
    )
    if active is not None:
        logger.warning(
            "Customer value: %s, so the active version %s (fitted %s) keeps scoring. Why: %s %s",
            what,
            active.version,
            active.trained_at,
            exc,
            fix,
        )
        return active
    logger.warning(
        "Customer value is MISSING this run: %s and no earlier version exists. Why: %s "
        "The segments are not affected; P_ALIVE, EXPECTED_PURCHASES, EXPECTED_ORDER_VALUE and CLV are NULL in "
        "CUSTOMER_VALUE (VALUE_MISSING_REASON says why) and PROCESSED_DATA, and version %s is stored with "
        "STATUS FAILED in CUSTOMER_VALUE_MODELS. %s",
        what,
        exc,
        version,
        fix,
    )
    return NoValueModel(
        reason=str(exc),
        version=version,
        trained_at=str(run_metadata["started_at"]),
        segmentation_model_version=segmentation_version,
        settings=settings,
    )


def _settings(params: CustomerValueParams, ref: date, population: int, sample: int) -> dict[str, Any]:
    return {
        "horizon_days": params.horizon_days,
        "annual_discount_rate": params.annual_discount_rate,
        "margin": params.margin,
        "holdout_days": params.holdout_days,
        "sample_size": params.sample_size,
        "random_state": params.random_state,
        "reference_date": ref.isoformat(),
        "customers": population,
        "sampled_customers": sample,
        "time_unit": "days",
    }


def _log_fit(model: ValueModel) -> None:
    b, g = model.bgnbd, model.gamma_gamma
    logger.info(
        "Customer-value model %s: BG/NBD %s (log-likelihood %.1f, %s customers, %.1f s); Gamma-Gamma %s (%s repeat customers)",
        model.version,
        ", ".join(f"{k}={v:.4g}" for k, v in vars(b.params).items()),
        b.log_likelihood,
        f"{b.n_customers:,}",
        b.seconds,
        ", ".join(f"{k}={v:.4g}" for k, v in vars(g.params).items()),
        f"{g.n_customers:,}",
    )


def register_value_model(
    value_model: Any,
    value_models: pd.DataFrame,
    params: CustomerValueParams,
    run_metadata: dict[str, Any],
) -> ValueModelWrite:
    """A newly fitted value model as a version of CUSTOMER_VALUE_MODELS (a failed fit without any earlier
    version: a FAILED version holding the reason); nothing when the active one was kept."""
    stored = {str(v) for v in value_models["VERSION"]} if len(value_models) else set()
    if value_model.version in stored:
        return ValueModelWrite(record=None)
    return ValueModelWrite(
        record=value_model.to_record(),
        run_id=str(run_metadata.get("run_id") or value_model.version),
        keep_versions=params.keep_model_versions,
        protect=(params.model_version,) if params.model_version else (),
    )


# --- scoring ------------------------------------------------------------------------------------


def _scores(
    summary: DataFrame,
    model: ValueModel,
    params: CustomerValueParams,
    horizon_days: int,
    outcome_days: int | None = None,
    carry: tuple[str, ...] = (),
) -> DataFrame:
    """``value_sql.score_customers`` over ``summary`` with the discount and margin of ``params``."""
    from customer_segmentation import value_sql

    return value_sql.score_customers(
        summary.session,
        summary,
        model,
        horizon_days=horizon_days,
        annual_discount_rate=params.annual_discount_rate,
        margin=params.margin,
        outcome_days=outcome_days,
        carry=carry,
    )


def score_customer_value(
    value_summary_frame: DataFrame, value_model: Any, params: CustomerValueParams
) -> DataFrame:
    """CUSTOMER_VALUE: every summarised customer with P_ALIVE, EXPECTED_PURCHASES, EXPECTED_ORDER_VALUE and CLV (in SQL).

    Also the prediction over the next ``holdout_days`` (OUTCOME_EXPECTED_PURCHASES, _SPEND): the window
    SEGMENT_OUTCOMES later measures, so a snapshot's prediction and its outcome cover the same days.
    When no model exists (the fit failed, logged), every customer is there with NULL scores and
    VALUE_MISSING_REASON saying why.
    """
    outcome_days = int(params.holdout_days)
    fixed = [
        F.lit(int(params.horizon_days)).cast("int").alias("HORIZON_DAYS"),
        F.lit(outcome_days).cast("int").alias("OUTCOME_DAYS"),
    ]
    if isinstance(value_model, NoValueModel):
        return value_summary_frame.select(
            *[F.col(c) for c in value_summary.SUMMARY_COLUMNS],
            *[F.lit(None).cast("double").alias(c) for c in SCORE_COLUMNS],
            fixed[0],
            fixed[1],
            *[F.lit(None).cast("double").alias(c) for c in OUTCOME_COLUMNS],
            F.lit(None).cast("string").alias("VALUE_MODEL_VERSION"),
            F.lit(f"The customer-value fit failed: {value_model.reason}")
            .cast("string")
            .alias("VALUE_MISSING_REASON"),
        )
    # the summary's columns come through the scoring: no second pass over the summary to join them back
    carry = tuple(c for c in value_summary.SUMMARY_COLUMNS if c != "CUSTOMER_ID")
    scores = _scores(value_summary_frame, value_model, params, params.horizon_days, outcome_days, carry)
    return scores.select(
        *[F.col(c) for c in value_summary.SUMMARY_COLUMNS],
        *[F.col(c).cast("double").alias(c) for c in SCORE_COLUMNS],
        fixed[0],
        fixed[1],
        *[F.col(c).cast("double").alias(c) for c in OUTCOME_COLUMNS],
        F.lit(value_model.version).alias("VALUE_MODEL_VERSION"),
        F.lit(None).cast("string").alias("VALUE_MISSING_REASON"),
    )


# --- holdout evidence ---------------------------------------------------------------------------


def _materialised(frame: DataFrame, name: str) -> DataFrame:
    """``frame`` written once to a temporary table of this session (several queries then read it).

    Temporary tables are this session's scratch: invisible to other sessions, dropped when it ends
    (https://docs.snowflake.com/user-guide/tables-temp-transient). A DDL statement, never inside a
    transaction (none is open in a node).
    """
    table = f"CUSTOMER_VALUE_{name}_{uuid.uuid4().hex[:10].upper()}"
    frame.write.save_as_table(table, mode="overwrite", table_type="temporary")
    return frame.session.table(table)


def _skipped(reason: str, cutoff: date, ref: date, params: CustomerValueParams) -> dict[str, Any]:
    logger.warning("Customer-value holdout check skipped: %s", reason)
    return {
        "skipped": reason,
        "calibration_end": cutoff.isoformat(),
        "holdout_end": ref.isoformat(),
        "holdout_days": params.holdout_days,
        "large_error": False,
    }


def holdout_report(daily_spend: DataFrame, ref: date, params: CustomerValueParams) -> dict[str, Any]:
    """Refit on the order days before ``ref - holdout_days``, predict the holdout period, compare with what happened.

    The model that scores is the one fitted on the whole history; this fit is evidence only.
    Every per-customer comparison runs in the warehouse; the report holds aggregates.
    """
    from customer_segmentation import value_model as vm

    cutoff = ref - timedelta(days=params.holdout_days)
    # the order days before the cut-off rolled up once (a GROUP BY over CUSTOMER_DAILY_SPEND); the
    # sample, the scoring and the comparisons below read the stored rows
    calibration = _materialised(
        value_summary.summary_at(
            value_summary.transaction_rollup(value_summary.days_before(daily_spend, cutoff)), cutoff
        ),
        "CALIBRATION",
    )
    sample, population = fit_sample(calibration, params)
    if population == 0:
        return _skipped(
            f"no order before {cutoff} (the history is shorter than holdout_days)", cutoff, ref, params
        )
    if not (sample["X"] > 0).any():
        return _skipped(
            f"no repeat customer before {cutoff}: nothing to fit a holdout model on", cutoff, ref, params
        )
    try:
        bgnbd, gamma_gamma = fit_models(sample)
    except vm.ValueFitError as exc:
        return _skipped(f"the calibration fit failed: {exc}", cutoff, ref, params)
    model = vm.ValueModel(
        version=f"holdout-{cutoff.isoformat()}",
        trained_at=datetime.now(UTC).replace(tzinfo=None).isoformat(),
        segmentation_model_version=None,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        settings={"holdout_days": params.holdout_days},
        metrics={},
    )
    predicted = _scores(calibration, model, params, params.holdout_days).select(
        F.col("CUSTOMER_ID").alias("_PID"), "P_ALIVE", "EXPECTED_PURCHASES"
    )
    period = daily_spend.filter(
        (F.col("ORDER_DAY") >= _lit_date(cutoff))
        & (F.col("ORDER_DAY") < _lit_date(ref))
        & (F.col("KEPT_ORDERS") > 0)
    )
    actual = period.group_by(F.col("CUSTOMER_ID").alias("_AID")).agg(F.count(F.lit(1)).alias("ACTUAL"))
    per_customer = _materialised(
        calibration.join(predicted, calibration["CUSTOMER_ID"] == predicted["_PID"])
        .join(actual, F.col("CUSTOMER_ID") == F.col("_AID"), how="left")
        .select(
            "CUSTOMER_ID",
            "X",
            F.col("P_ALIVE").cast("double").alias("P_ALIVE"),
            F.col("EXPECTED_PURCHASES").cast("double").alias("PREDICTED"),
            F.coalesce(F.col("ACTUAL"), F.lit(0)).cast("double").alias("ACTUAL"),
        ),
        "HOLDOUT",
    )
    report = _headline(per_customer, params)
    report.update(
        {
            "calibration_end": cutoff.isoformat(),
            "holdout_end": ref.isoformat(),
            "holdout_days": params.holdout_days,
            "calibration_customers": population,
            "bgnbd": {k: float(v) for k, v in vars(bgnbd.params).items()},
            "gamma_gamma": {k: float(v) for k, v in vars(gamma_gamma.params).items()},
            "by_frequency": _by_frequency(per_customer),
            "by_p_alive_decile": _by_decile(per_customer),
            "tracking": _tracking(daily_spend, calibration, model, cutoff, ref),
        }
    )
    return report


def _headline(per_customer: DataFrame, params: CustomerValueParams) -> dict[str, Any]:
    row = per_customer.agg(
        F.count(F.lit(1)).alias("N"),
        F.sum("PREDICTED").alias("PRED"),
        F.sum("ACTUAL").alias("ACT"),
        F.corr("PREDICTED", "ACTUAL").alias("CORR"),
        F.avg(F.abs(F.col("PREDICTED") - F.col("ACTUAL"))).alias("MAE"),
    ).collect()[0]
    predicted, actual = float(row["PRED"] or 0.0), float(row["ACT"] or 0.0)
    error = (predicted - actual) / actual if actual > 0 else None
    corr = row["CORR"]
    corr = float(corr) if corr is not None and math.isfinite(float(corr)) else None
    return {
        "customers": int(row["N"]),
        "predicted_purchases": round(predicted, 6),
        "actual_purchases": round(actual, 6),
        "total_error": None if error is None else round(error, 6),
        "correlation": None if corr is None else round(corr, 6),
        "mae": round(float(row["MAE"] or 0.0), 6),
        "large_error": bool(error is None or abs(error) > params.holdout_warning_error),
    }


def _by_frequency(per_customer: DataFrame) -> list[dict[str, Any]]:
    """The paper's conditional expectations: mean predicted and actual holdout purchases by calibration frequency."""
    bucket = F.least(F.col("X"), F.lit(MAX_FREQUENCY_ROW))
    frame = (
        per_customer.group_by(bucket.alias("FREQUENCY"))
        .agg(
            F.count(F.lit(1)).alias("CUSTOMERS"),
            F.avg("ACTUAL").alias("ACTUAL"),
            F.avg("PREDICTED").alias("PREDICTED"),
        )
        .sort("FREQUENCY")
        .to_pandas()
    )
    return [
        {
            "frequency": f"{int(r.FREQUENCY)}+"
            if int(r.FREQUENCY) == MAX_FREQUENCY_ROW
            else str(int(r.FREQUENCY)),
            "actual": round(float(r.ACTUAL), 6),
            "predicted": round(float(r.PREDICTED), 6),
            "customers": int(r.CUSTOMERS),
        }
        for r in frame.itertuples(index=False)
    ]


def _by_decile(per_customer: DataFrame) -> list[dict[str, Any]]:
    """Actual purchase rate (share who bought in the holdout) by decile of P(alive) at the calibration end."""
    decile = F.ntile(F.lit(10)).over(Window.order_by(F.col("P_ALIVE"), F.col("CUSTOMER_ID")))
    frame = (
        per_customer.with_column("DECILE", decile)
        .group_by("DECILE")
        .agg(
            F.count(F.lit(1)).alias("CUSTOMERS"),
            F.avg("P_ALIVE").alias("P_ALIVE"),
            F.avg(F.iff(F.col("ACTUAL") > 0, F.lit(1.0), F.lit(0.0))).alias("RATE"),
            F.avg("ACTUAL").alias("ACTUAL"),
            F.avg("PREDICTED").alias("PREDICTED"),
        )
        .sort("DECILE")
        .to_pandas()
    )
    return [
        {
            "decile": int(r.DECILE),
            "mean_p_alive": round(float(r.P_ALIVE), 6),
            "actual_purchase_rate": round(float(r.RATE), 6),
            "actual": round(float(r.ACTUAL), 6),
            "predicted": round(float(r.PREDICTED), 6),
            "customers": int(r.CUSTOMERS),
        }
        for r in frame.itertuples(index=False)
    ]


def _tracking(
    daily_spend: DataFrame, calibration: DataFrame, model: ValueModel, cutoff: date, ref: date
) -> list[dict[str, Any]]:
    """Cumulative repeat transactions of the calibration customers, actual and predicted, week by week.

    Predicted as in Fader, Hardie & Lee (2005, figure 2): each cohort of customers who made their
    first purchase on day s contributes its size times E[X(d - s)] (the unconditional expectation)
    at day d; over the calibration period and the holdout period after ``cutoff``. Bounded: one
    row per first-purchase day and one per order day come to pandas.
    """
    cohorts = calibration.group_by("FIRST_PURCHASE_DATE").agg(F.count(F.lit(1)).alias("N")).to_pandas()
    first = calibration.select(
        F.col("CUSTOMER_ID").alias("_CID"), F.col("FIRST_PURCHASE_DATE").alias("_FIRST")
    )
    repeat_days = (
        daily_spend.filter((F.col("KEPT_ORDERS") > 0) & (F.col("ORDER_DAY") < _lit_date(ref)))
        .join(first, F.col("CUSTOMER_ID") == F.col("_CID"))
        .filter(F.col("ORDER_DAY") > F.col("_FIRST"))
        .group_by("ORDER_DAY")
        .agg(F.count(F.lit(1)).alias("N"))
        .to_pandas()
    )
    if cohorts.empty:
        return []
    starts = np.array([as_date(d).toordinal() for d in cohorts["FIRST_PURCHASE_DATE"]], dtype=np.int64)
    sizes = cohorts["N"].to_numpy(float)
    begin = int(starts.min())
    end = ref.toordinal()
    points = list(range(begin + TRACKING_STEP_DAYS, end, TRACKING_STEP_DAYS)) + [end]
    per_day = pd.Series(
        repeat_days["N"].to_numpy(float),
        index=[as_date(d).toordinal() for d in repeat_days["ORDER_DAY"]],
        dtype=float,
    ).sort_index()
    cumulative = per_day.cumsum()
    predictions = tracking_predictions(model.bgnbd.params, starts, sizes, points)
    rows = []
    for day, predicted in zip(points, predictions, strict=True):
        # repeat transactions on days strictly before `day` (a point is the end of its week)
        seen = cumulative[cumulative.index < day]
        actual = float(seen.iloc[-1]) if len(seen) else 0.0
        rows.append(
            {
                "day": date.fromordinal(day).isoformat(),
                "actual": round(actual, 6),
                "predicted": round(predicted, 6),
                "period": "calibration" if day <= cutoff.toordinal() else "holdout",
            }
        )
    return rows


def tracking_predictions(
    params: Any, starts: np.ndarray, sizes: np.ndarray, points: list[int]
) -> list[float]:
    """Predicted cumulative repeat transactions at each day of ``points`` (ordinals) [FHL05 figure 2]:
    the sum over cohorts (first-purchase day ``starts``, ``sizes`` customers) of size * E[X(day - start)].

    E[X(age)] is evaluated once over the distinct ages of every (point, cohort) pair (at most one
    per day of the history) instead of once per point: the series then runs once, not ~100 times
    (about 1 s of the holdout report at 1M customers).
    """
    from customer_segmentation import value_model as vm

    ages = np.clip(np.asarray(points, dtype=np.int64)[:, None] - starts[None, :], 0, None).astype(float)
    distinct, where = np.unique(ages, return_inverse=True)
    curves = vm.expected_purchases_unconditional(params, distinct)[where.reshape(-1)].reshape(ages.shape)
    return [float(np.sum(sizes * curve)) for curve in curves]


def _warn_on_holdout(report: dict[str, Any], params: CustomerValueParams) -> None:
    if report.get("skipped"):
        return
    error = report.get("total_error")
    if report.get("large_error"):
        logger.warning(
            "Customer-value holdout check: predicted %.0f repeat purchases in the %s days after %s, %.0f happened "
            "(error %s, above customer_value.holdout_warning_error %.0f%%); per-customer correlation %s. "
            "Read docs/customer-value.md before acting on CLV.",
            report["predicted_purchases"],
            report["holdout_days"],
            report["calibration_end"],
            report["actual_purchases"],
            "n/a" if error is None else f"{error:+.1%}",
            100 * params.holdout_warning_error,
            report.get("correlation"),
        )
    else:
        logger.info(
            "Customer-value holdout check: predicted %.0f repeat purchases, %.0f happened (error %+.1f%%), correlation %s, MAE %.3f",
            report["predicted_purchases"],
            report["actual_purchases"],
            100 * (error or 0.0),
            report.get("correlation"),
            report["mae"],
        )


# --- outcomes of past segments ------------------------------------------------------------------


def segment_outcomes(
    segment_history: DataFrame,
    customer_aggregates: CustomerAggregates,
    segment_outcomes_previous: DataFrame,
    reference_date: str,
    params: CustomerValueParams,
) -> DataFrame | SnapshotWrite:
    """SEGMENT_OUTCOMES rows of the snapshots that became ``holdout_days`` old and are not recorded yet.

    ``segment_history`` is SEGMENT_HISTORY as stored before this run: a snapshot old enough was
    written by an earlier run (today's never is).

    Per segment of such a snapshot: the customers, what the model predicted for them then (mean
    P(alive); expected purchases and expected spend over the same ``holdout_days`` window, stored with
    the snapshot as OUTCOME_EXPECTED_PURCHASES / _SPEND; CLV over the horizon) and what they did in the
    ``holdout_days`` after it (repeat purchases = transaction days, net revenue, the share who
    bought again). Like is compared with like: a snapshot whose stored prediction covers another
    window (OUTCOME_DAYS != holdout_days, or a snapshot from before these columns) gets NULL
    predictions rather than a misleading figure. An empty frame (no snapshot is old enough yet)
    still creates the table; once it exists, a day with nothing due writes nothing
    (``SnapshotWrite(..., only_if_missing=True)``: 0.4 s of every `daily` at 1M customers).
    """
    ref = date.fromisoformat(reference_date)
    period = int(params.holdout_days)
    # no SEGMENT_HISTORY yet (the value pipeline run alone): the same query over no row
    needed = {
        "SNAPSHOT_DATE": "date",
        "CUSTOMER_ID": "string",
        "SEGMENT_ID": "int",
        "SEGMENT_LABEL": "string",
    }
    absent = [name for name in needed if name not in segment_history.columns]
    if absent:
        segment_history = segment_history.with_columns(
            absent, [F.lit(None).cast(needed[name]) for name in absent]
        )
    latest_start = ref - timedelta(days=period)
    # the due snapshot dates: two small DISTINCT queries (one row per snapshot date) and a set
    # difference here, rather than a chain of frames whose every step the client has to describe
    done = segment_outcomes_previous.select("SNAPSHOT_DATE").distinct().collect()
    recorded = {as_date(r[0]) for r in done if r[0] is not None}
    old_enough = (
        segment_history.filter(F.col("SNAPSHOT_DATE") <= _lit_date(latest_start))
        .select("SNAPSHOT_DATE")
        .distinct()
        .collect()
    )
    due = sorted(d for d in (as_date(r[0]) for r in old_enough if r[0] is not None) if d not in recorded)
    due = due[: params.outcome_snapshots_per_run]
    daily = customer_aggregates.daily_spend
    if due:
        history = segment_history.filter(F.col("SNAPSHOT_DATE").isin([_lit_date(d) for d in due]))
    else:
        if "SEGMENT_ID" in segment_outcomes_previous.columns:
            # nothing due (most days) and SEGMENT_OUTCOMES exists (not the one-column stand-in the
            # catalog loads for a missing table): nothing to build or write
            return SnapshotWrite(segment_outcomes_previous.limit(0), only_if_missing=True)
        # nothing due, no table yet: the same query over no row creates it, and the engine skips
        # scanning SEGMENT_HISTORY and CUSTOMER_DAILY_SPEND for it
        history, daily = segment_history.filter(F.lit(False)), daily.filter(F.lit(False))
    columns = history.columns
    predicted = {
        name: (F.col(name) if name in columns else F.lit(None)).cast("double")
        for name in ("P_ALIVE", "CLV", *OUTCOME_COLUMNS)
    }
    # the window prediction counts only when it covers the measured window (same number of days)
    same_window = (F.col("OUTCOME_DAYS") if "OUTCOME_DAYS" in columns else F.lit(None)).cast("int") == F.lit(
        period
    )
    for name in OUTCOME_COLUMNS:
        predicted[name] = F.iff(same_window, predicted[name], F.lit(None).cast("double"))
    members = history.select(
        F.col("SNAPSHOT_DATE").alias("S_DATE"),
        F.col("CUSTOMER_ID").alias("S_CID"),
        F.col("SEGMENT_ID").alias("S_SEGMENT_ID"),
        F.col("SEGMENT_LABEL").alias("S_SEGMENT_LABEL"),
        *[column.alias(f"S_{name}") for name, column in predicted.items()],
    )
    days = daily.select(
        F.col("CUSTOMER_ID").alias("D_CID"),
        F.col("ORDER_DAY").alias("D_DAY"),
        F.iff(F.col("KEPT_ORDERS") > 0, F.lit(1), F.lit(0)).alias("D_TXN"),
        F.col("NET_SPEND").cast(value_summary.MONEY).alias("D_NET"),
    )
    end = F.dateadd("day", F.lit(period), F.col("S_DATE"))
    after = members.join(
        days,
        (F.col("S_CID") == F.col("D_CID")) & (F.col("D_DAY") >= F.col("S_DATE")) & (F.col("D_DAY") < end),
        how="left",
    )
    per_customer = after.group_by(
        "S_DATE",
        "S_CID",
        "S_SEGMENT_ID",
        "S_SEGMENT_LABEL",
        *[f"S_{name}" for name in predicted],
    ).agg(
        F.coalesce(F.sum("D_TXN"), F.lit(0)).alias("TXN"),
        # money summed exact (NUMBER), so the result does not depend on the order rows are added in
        F.coalesce(F.sum("D_NET"), F.lit(0).cast(value_summary.MONEY)).alias("NET"),
    )
    return (
        per_customer.group_by("S_DATE", "S_SEGMENT_ID", "S_SEGMENT_LABEL")
        .agg(
            F.count(F.lit(1)).alias("CUSTOMERS"),
            # predictions (doubles) summed exact (exact.py): the same whatever order the rows come in
            exact_mean(F.col("S_P_ALIVE")).alias("PREDICTED_P_ALIVE"),
            # NULL unless every member carries a prediction for this window (no partial sums)
            *[
                F.iff(
                    F.count(f"S_{name}") == F.count(F.lit(1)),
                    exact_sum(F.col(f"S_{name}")).cast("double"),
                    F.lit(None).cast("double"),
                ).alias(alias)
                for name, alias in (
                    ("OUTCOME_EXPECTED_PURCHASES", "PREDICTED_PURCHASES"),
                    ("OUTCOME_EXPECTED_SPEND", "PREDICTED_NET_REVENUE"),
                )
            ],
            exact_sum(F.col("S_CLV")).alias("PREDICTED_CLV"),
            F.sum("TXN").alias("ACTUAL_PURCHASES"),
            F.sum(F.col("NET").cast(value_summary.MONEY)).alias("ACTUAL_NET_REVENUE"),
            F.avg(F.iff(F.col("TXN") > 0, F.lit(1.0), F.lit(0.0))).alias("REPEAT_BUYER_SHARE"),
        )
        .select(
            F.col("S_DATE").cast("date").alias("SNAPSHOT_DATE"),
            F.dateadd("day", F.lit(period), F.col("S_DATE")).cast("date").alias("PERIOD_END"),
            F.lit(period).cast("int").alias("PERIOD_DAYS"),
            F.col("S_SEGMENT_ID").cast("int").alias("SEGMENT_ID"),
            F.col("S_SEGMENT_LABEL").alias("SEGMENT_LABEL"),
            F.col("CUSTOMERS").cast("int").alias("CUSTOMERS"),
            F.round(F.col("PREDICTED_P_ALIVE"), 6).cast("double").alias("PREDICTED_P_ALIVE"),
            F.col("REPEAT_BUYER_SHARE").cast("double").alias("REPEAT_BUYER_SHARE"),
            F.round(F.col("PREDICTED_PURCHASES"), 6).cast("double").alias("PREDICTED_PURCHASES"),
            # the days PREDICTED_PURCHASES covers: the measured period itself (NULL without a prediction)
            F.iff(F.col("PREDICTED_PURCHASES").is_null(), F.lit(None), F.lit(period))
            .cast("int")
            .alias("PREDICTION_HORIZON_DAYS"),
            F.col("ACTUAL_PURCHASES").cast("int").alias("ACTUAL_PURCHASES"),
            F.round(F.col("PREDICTED_CLV"), 2).cast("double").alias("PREDICTED_CLV"),
            F.round(F.col("PREDICTED_NET_REVENUE"), 2).cast("double").alias("PREDICTED_NET_REVENUE"),
            F.round(F.col("ACTUAL_NET_REVENUE"), 2).cast("double").alias("ACTUAL_NET_REVENUE"),
        )
        .sort("SNAPSHOT_DATE", "SEGMENT_ID")
    )
