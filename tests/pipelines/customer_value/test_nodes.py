"""Customer-value nodes that need no warehouse: the refit decision, weighting, registry requests, charts."""

from __future__ import annotations

import json
from datetime import date

import numpy as np
import pandas as pd
import pytest

from customer_segmentation import value_model as vm
from customer_segmentation.datasets.value_model_table import ValueModelWrite
from customer_segmentation.errors import UnknownModelVersionError
from customer_segmentation.pipelines.customer_value.nodes import (
    fit_models,
    fit_value_model,
    grouped,
    refit_reason,
    register_value_model,
    tracking_predictions,
)
from customer_segmentation.pipelines.customer_value.params import CustomerValueParams
from customer_segmentation.pipelines.prediction.params import PredictionParams
from customer_segmentation.pipelines.reporting.nodes import plot_value_by_frequency, plot_value_tracking
from customer_segmentation.pipelines.training.params import TrainingParams
from customer_segmentation.value_summary import add_value_shares

REPORT = {
    "predicted_purchases": 110.0,
    "actual_purchases": 100.0,
    "total_error": 0.1,
    "correlation": 0.6,
    "mae": 0.4,
    "large_error": False,
    "calibration_end": "2026-05-01",
    "holdout_end": "2026-10-28",
    "holdout_days": 180,
    "by_frequency": [
        {"frequency": "0", "actual": 0.2, "predicted": 0.25, "customers": 50},
        {"frequency": "7+", "actual": 3.0, "predicted": 2.8, "customers": 5},
    ],
    "tracking": [
        {"day": "2026-04-01", "actual": 10.0, "predicted": 11.0, "period": "calibration"},
        {"day": "2026-10-28", "actual": 110.0, "predicted": 121.0, "period": "holdout"},
    ],
}


def model(
    version: str = "v1", segmentation: str | None = "s1", trained_at: str = "2026-11-01T06:00:00"
) -> vm.ValueModel:
    bgnbd = vm.FitResult(vm.BGNBDParams(0.24, 30.9, 0.79, 2.43), -100.0, 10, 5, 0.1, True)
    gamma_gamma = vm.FitResult(vm.GammaGammaParams(6.25, 3.74, 15.44), -50.0, 5, 5, 0.1, True)
    return vm.ValueModel(
        version=version,
        trained_at=trained_at,
        segmentation_model_version=segmentation,
        bgnbd=bgnbd,
        gamma_gamma=gamma_gamma,
        settings={"horizon_days": 365},
        metrics={"holdout": REPORT},
    )


def versions(*models: vm.ValueModel) -> pd.DataFrame:
    """What CUSTOMER_VALUE_MODELS loads: one row per version, newest first, PARAMS/METRICS as JSON text."""
    import json

    rows = []
    for m in models:
        record = m.to_record()
        record["PARAMS"], record["METRICS"] = json.dumps(record["PARAMS"]), json.dumps(record["METRICS"])
        rows.append(record)
    return pd.DataFrame(rows)


def test_refit_reason() -> None:
    never, weekly = TrainingParams(), TrainingParams.of(retrain_policy={"max_age_days": 7})
    today = date(2026, 11, 5)
    assert "no customer-value model" in refit_reason(None, "s1", never, today)
    assert "segmentation model changed (s1 -> s2)" in refit_reason(model(), "s2", never, today)
    assert refit_reason(model(), "s1", never, today) is None
    assert refit_reason(model(), None, never, today) is None  # no segmentation model: keep the value model
    assert refit_reason(model(), "s1", weekly, today) is None  # 4 days old
    assert "8 days old" in refit_reason(model(), "s1", weekly, date(2026, 11, 9))


def simulated(n: int, seed: int = 3) -> pd.DataFrame:
    """Customers drawn from a BG/NBD process (days), rounded to whole days as the summary is."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        rate, dropout, horizon = rng.gamma(0.5, 1 / 20), rng.beta(0.8, 2.5), int(rng.integers(30, 365))
        t, last, x = 0.0, 0.0, 0
        while True:
            t += rng.exponential(1 / rate)
            if t >= horizon:
                break
            x, last = x + 1, t
            if rng.random() < dropout:
                break
        rows.append((x, int(last), horizon, float(rng.choice([10.0, 20.0, 35.5])) if x else np.nan))
    return pd.DataFrame(rows, columns=["X", "T_X", "T", "MEAN_VALUE"])


def test_grouped_rows_carry_their_counts_and_give_the_same_fit() -> None:
    sample = simulated(600)
    rows = grouped(sample, ["X", "T_X", "T"])
    assert rows["WEIGHT"].sum() == 600 and len(rows) == len(sample.drop_duplicates(["X", "T_X", "T"]))
    assert len(rows) < 600 and not rows.duplicated(["X", "T_X", "T"]).any()
    # the weighted fit equals the fit on every row (the likelihood is a sum over rows)
    bgnbd, gamma_gamma = fit_models(sample)
    plain = vm.fit_bgnbd(sample["X"], sample["T_X"], sample["T"])
    np.testing.assert_allclose(
        list(vars(bgnbd.params).values()), list(vars(plain.params).values()), rtol=1e-4
    )
    assert bgnbd.n_customers == 600 and gamma_gamma.n_customers == int((sample["X"] > 0).sum())


def test_a_pin_scores_with_the_pinned_version_and_refits_nothing() -> None:
    stored = versions(model("v2", "s2", "2026-11-02T06:00:00"), model("v1"))
    params = CustomerValueParams(model_version="v1")
    chosen = fit_value_model(
        None,
        "2026-11-03",
        None,
        stored,
        pd.DataFrame(),
        params,
        TrainingParams(),
        PredictionParams(),
        {"started_at": "2026-11-03T06:00:00"},
    )
    assert chosen.version == "v1"
    assert register_value_model(chosen, stored, params, {"run_id": "r"}).record is None
    with pytest.raises(UnknownModelVersionError, match="customer_value.model_version pins 'v9'"):
        fit_value_model(
            None,
            "2026-11-03",
            None,
            stored,
            pd.DataFrame(),
            CustomerValueParams(model_version="v9"),
            TrainingParams(),
            PredictionParams(),
            {"started_at": "2026-11-03T06:00:00"},
        )


def test_the_active_version_is_kept_while_the_segmentation_model_is() -> None:
    stored = versions(model("v1", "s1"))
    segmentation = pd.DataFrame({"version": ["s1"], "status": ["READY"]})
    kept = fit_value_model(
        None,
        "2026-11-03",
        None,
        stored,
        segmentation,
        CustomerValueParams(),
        TrainingParams(),
        PredictionParams(),
        {"started_at": "2026-11-03T06:00:00"},
    )
    assert kept.version == "v1" and kept.metrics["holdout"] == REPORT


def test_register_stores_a_new_version_with_its_pin_protected() -> None:
    write = register_value_model(
        model("v3"), versions(model("v1")), CustomerValueParams(keep_model_versions=5), {"run_id": "r3"}
    )
    assert isinstance(write, ValueModelWrite) and write.record["VERSION"] == "v3"
    assert write.keep_versions == 5 and write.run_id == "r3" and write.protect == ()
    assert write.record["METRICS"]["holdout"]["total_error"] == 0.1


def test_value_shares() -> None:
    frame = pd.DataFrame(
        {
            "SEGMENT_ID": [0, 1, 2],
            "MEDIAN_P_ALIVE": [0.5, 0.9, None],
            "TOTAL_CLV": [300.004, 100.0, -5.0],
            "MEDIAN_CLV": [3, 1, 0],
        }
    )
    out = add_value_shares(frame)
    assert out["TOTAL_CLV"].tolist() == [300.0, 100.0, -5.0]
    np.testing.assert_allclose(out["EXPECTED_REVENUE_SHARE"], [0.75, 0.25, 0.0])
    assert np.isnan(out["MEDIAN_P_ALIVE"].iloc[2])


def test_holdout_charts_draw_the_report_of_the_active_version() -> None:
    stored = versions(model("v1"))
    tracking = plot_value_tracking(stored, CustomerValueParams())
    assert [t.name for t in tracking.data] == ["actual", "predicted"]
    assert list(tracking.data[1].y) == [11.0, 121.0] and "+10.0%" in tracking.layout.title.text
    by_frequency = plot_value_by_frequency(stored, CustomerValueParams())
    assert list(by_frequency.data[0].x) == ["0", "7+"] and list(by_frequency.data[1].y) == [0.25, 2.8]
    # no model yet, or a skipped holdout: an empty chart that says why
    empty = plot_value_tracking(versions(), CustomerValueParams())
    assert not empty.data and "no customer-value model yet" in empty.layout.title.text
    skipped = model("v2")
    skipped.metrics = {"holdout": {"skipped": "no repeat customer before 2026-05-01"}}
    chart = plot_value_by_frequency(versions(skipped), CustomerValueParams())
    assert not chart.data and "no repeat customer" in chart.layout.title.text


def test_a_failed_fit_without_any_version_says_what_why_and_how_everywhere(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The run goes on (segments are the main product), but the warning, the registry (a FAILED version),
    the charts and a pin all say that the value is missing, and why."""
    import logging

    from customer_segmentation.pipelines.customer_value.nodes import NoValueModel, _fit_failed

    x = np.zeros(50)
    with pytest.raises(vm.ValueFitError) as raised:
        vm.fit_bgnbd(x, x, np.arange(50.0))
    with caplog.at_level(logging.WARNING):
        missing = _fit_failed(
            raised.value,
            None,
            "run-1",
            {"started_at": "2026-11-03T06:00:00"},
            "s1",
            {"holdout_days": 180},
            50,
        )
    assert isinstance(missing, NoValueModel)
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "Customer value is MISSING this run" in warning  # what
    assert "BG/NBD + Gamma-Gamma on 50 sampled customers" in warning
    assert "Why: No customer in the sample bought twice" in warning and "load a longer history" in warning
    assert "VALUE_MISSING_REASON" in warning and "STATUS FAILED" in warning  # where it shows
    assert "then run `kedro run`" in warning and "--pipelines customer_value" in warning  # how to fix

    write = register_value_model(missing, versions(), CustomerValueParams(), {"run_id": "run-1"})
    record = write.record
    assert record["STATUS"] == "FAILED" and record["VERSION"] == "run-1"
    assert "bought twice" in record["METRICS"]["failed"]
    assert "the fit failed" in record["METRICS"]["holdout"]["skipped"]
    stored = pd.DataFrame(
        [{**record, "PARAMS": json.dumps(record["PARAMS"]), "METRICS": json.dumps(record["METRICS"])}]
    )
    assert vm.active_value_model(stored) is None  # a failed fit never scores
    for chart in (plot_value_tracking, plot_value_by_frequency):
        figure = chart(stored, CustomerValueParams())
        assert not figure.data and "the value model fit failed: No customer in the sample bought twice" in (
            figure.layout.title.text
        )
    with pytest.raises(UnknownModelVersionError, match="'run-1', a fit that failed"):
        vm.active_value_model(stored, pinned="run-1")

    # with an active version, that one keeps scoring and the warning says so (and why the refit failed)
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        kept = _fit_failed(raised.value, model("v1"), "run-2", {"started_at": "x"}, "s1", {}, 50)
    assert kept.version == "v1"
    assert "active version v1 (fitted 2026-11-01T06:00:00) keeps scoring. Why: No customer" in caplog.text


def test_tracking_predictions_equal_the_closed_form_summed_over_cohorts() -> None:
    """The tracking chart's predicted curve: each point the sum over cohorts of size * E[X(age)], checked
    against scipy's 2F1 in [FHL05 eq. 7] evaluated cohort by cohort and point by point (cohorts on
    irregular days, ages of zero before a cohort starts, ten years of daily points for one of them)."""
    from scipy.special import hyp2f1

    m = vm.BGNBDParams(r=0.243, alpha=4.414 * 7, a=0.793, b=2.426)  # the CDNOW sample's, in days
    starts = np.array([729000, 729003, 729010, 729011, 729100, 731000], dtype=np.int64)
    sizes = np.array([120.0, 3.0, 57.0, 1.0, 18.0, 2.0])
    points = [*range(728990, 729000 + 3650, 7), 729000 + 3650]

    def expected(t: float) -> float:
        if t <= 0:
            return 0.0
        z = t / (m.alpha + t)
        return (
            (m.a + m.b - 1)
            / (m.a - 1)
            * (1 - (m.alpha / (m.alpha + t)) ** m.r * hyp2f1(m.r, m.b, m.a + m.b - 1, z))
        )

    got = tracking_predictions(m, starts, sizes, points)
    want = [sum(n * expected(day - s) for s, n in zip(starts, sizes, strict=True)) for day in points]
    assert len(got) == len(points)
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)
    assert got[0] == 0.0 and got == sorted(got)  # nothing before the first cohort; cumulative
