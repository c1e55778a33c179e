"""Monitoring nodes on small frames: flows, profiles, retrain decisions, export files, simulation."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.datasets.export import csv_bytes, resolve_export_folder
from customer_segmentation.demo.generator import generate_events
from customer_segmentation.demo.simulation import demo_population, simulate_events
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.pipelines.export_segments.nodes import file_name
from customer_segmentation.pipelines.model_refresh.nodes import decide_retrain
from customer_segmentation.pipelines.monitoring.nodes import build_profiles, summarise_flows
from customer_segmentation.pipelines.prediction.params import PredictionParams
from customer_segmentation.pipelines.simulate_days.params import SimulateDaysParams
from customer_segmentation.pipelines.training.params import TrainingParams


def migrations(rows: list[tuple]) -> pd.DataFrame:
    return pd.DataFrame(
        rows, columns=["FROM_SEGMENT_ID", "FROM_SEGMENT", "TO_SEGMENT_ID", "TO_SEGMENT", "CUSTOMERS"]
    )


def test_flows_count_stayed_entered_exited() -> None:
    m = migrations(
        [
            (0, "A", 0, "A", 10),
            (0, "A", 1, "B", 3),
            (1, "B", 1, "B", 5),
            (1, "B", 0, "A", 2),
            (-1, "new", 1, "B", 4),
            (1, "B", -1, "gone", 1),
        ]
    )
    flows = summarise_flows(m).set_index("SEGMENT_LABEL")
    assert flows.loc["A"].to_dict() == {
        "SEGMENT_ID": 0,
        "CUSTOMERS_BEFORE": 13,
        "CUSTOMERS_AFTER": 12,
        "STAYED": 10,
        "ENTERED": 2,
        "ENTERED_NEW": 0,
        "EXITED": 3,
    }
    assert flows.loc["B"].to_dict() == {
        "SEGMENT_ID": 1,
        "CUSTOMERS_BEFORE": 5 + 2 + 1,
        "CUSTOMERS_AFTER": 12,
        "STAYED": 5,
        "ENTERED": 7,
        "ENTERED_NEW": 4,
        "EXITED": 3,
    }
    # conservation: before + entered - exited = after
    assert (
        (flows["CUSTOMERS_BEFORE"] + flows["ENTERED"] - flows["EXITED"]) == flows["CUSTOMERS_AFTER"]
    ).all()


def test_profiles_pick_the_most_distinctive_features_and_the_playbook_action() -> None:
    rng = np.random.default_rng(0)
    customers = pd.DataFrame(
        {
            "SEGMENT_ID": np.repeat([4, 9], 50),
            "RECENCY_DAYS": np.r_[rng.normal(10, 2, 50), rng.normal(300, 30, 50)],
            "FREQUENCY": np.r_[rng.normal(20, 3, 50), rng.normal(2, 1, 50)],
            "MONETARY": np.r_[rng.normal(900, 50, 50), rng.normal(100, 20, 50)],
            "RETURN_RATE": rng.normal(0.1, 0.01, 100),
        }
    )
    features = ["RECENCY_DAYS", "FREQUENCY", "MONETARY", "RETURN_RATE"]
    stats = (
        customers.groupby("SEGMENT_ID")
        .agg(
            CUSTOMERS=("RECENCY_DAYS", "size"),
            REVENUE=("MONETARY", "sum"),
            **{f"MEDIAN_{f}": (f, "median") for f in features},
            **{f"MEAN_{f}": (f, "mean") for f in features},
        )
        .reset_index()
    )
    stats["SEGMENT_LABEL"] = ["Best", "Gone"]
    stats["DOMINANT_RFM_SEGMENT"] = ["Champions", "Lost"]
    overall = {f: (customers[f].mean(), customers[f].std(ddof=0)) for f in features}
    profiles = build_profiles(
        stats, overall, features, {"Champions": "Reward them.", "default": "Look."}
    ).set_index("SEGMENT_LABEL")
    best = profiles.loc["Best"]
    assert best["SUGGESTED_ACTION"] == "Reward them." and profiles.loc["Gone", "SUGGESTED_ACTION"] == "Look."
    assert "RETURN_RATE" not in {best["TOP_FEATURE_1"], best["TOP_FEATURE_2"], best["TOP_FEATURE_3"]}
    expected = (
        customers.loc[customers.SEGMENT_ID == 4, "FREQUENCY"].mean() - overall["FREQUENCY"][0]
    ) / overall["FREQUENCY"][1]
    sd = {best[f"TOP_FEATURE_{i}"]: best[f"TOP_FEATURE_{i}_SD"] for i in (1, 2, 3)}
    assert sd["FREQUENCY"] == pytest.approx(expected, abs=1e-4)
    assert best["MEDIAN_MONETARY"] == pytest.approx(
        customers.loc[customers.SEGMENT_ID == 4, "MONETARY"].median()
    )
    assert best["CUSTOMER_SHARE"] == 0.5
    assert "lower days since the last order" in best["DESCRIPTION"] and "higher orders" in best["DESCRIPTION"]


@pytest.mark.parametrize(
    ("policy", "status", "age", "retrain"),
    [
        ("never", "retrain_recommended", 999, False),
        ("on_drift", "retrain_recommended", 0, True),
        ("on_drift", "watch", 999, False),
        ({"max_age_days": 30}, "retrain_recommended", 29, False),
        ({"max_age_days": 30}, None, 30, True),
        ({"max_age_days": 30, "on_drift": True}, "retrain_recommended", 1, True),
    ],
)
def test_retrain_decision(policy, status, age, retrain) -> None:
    assert decide_retrain(TrainingParams(retrain_policy=policy), status, age)[0] is retrain


def test_refresh_respects_a_pin_and_registers_only_a_new_version() -> None:
    from dataclasses import replace

    from customer_segmentation.pipelines.model_refresh.nodes import refresh_model, register_refreshed_model
    from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
    from customer_segmentation.segment_identity import align_segment_ids
    from tests.pipelines.training.test_nodes import PARAMS, planted_customers

    sample = planted_customers(60)
    model = align_segment_ids(
        fit_segmentation_model(sample, {"k": 3, "source": "t"}, PARAMS, {"run_id": "v1"}), None, sample
    )
    # a pinned version is a rollback: no retrain, whatever the policy (nothing is read either)
    kept = refresh_model(
        None,
        model,
        None,
        TrainingParams.of(PARAMS, retrain_policy={"max_age_days": 1}),
        PredictionParams(model_version="v1"),
        {"started_at": "2099-01-01T06:00:00"},
    )
    assert kept is model
    assert register_refreshed_model(model, model, PARAMS, PredictionParams(), {"run_id": "d1"}).record is None
    retrained = replace(model, version="d2", segment_ids=[4, 0, 2])
    write = register_refreshed_model(
        retrained,
        model,
        TrainingParams.of(PARAMS, keep_model_versions=5),
        PredictionParams(model_version=None),
        {"run_id": "d2"},
    )
    assert write.record["version"] == "d2" and write.run_id == "d2" and write.keep_versions == 5
    assert (
        write.record["extra"]["segment_ids"] == [4, 0, 2] and write.record["extra"]["drift_reference"]["bins"]
    )


@pytest.mark.parametrize("bad", ["sometimes", {"max_age_days": 0}, {"max_age": 3}, {"max_age_days": "x"}, 5])
def test_bad_retrain_policy_is_refused(bad) -> None:
    with pytest.raises(InvalidParametersError, match="training.retrain_policy: must be never, on_drift or"):
        TrainingParams.of(retrain_policy=bad)


def test_export_files_are_deterministic_and_stay_in_the_project(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"CUSTOMER_ID": ["b", "a"], "MONETARY": [1.0 / 3, 2.5], "SNAPSHOT_DATE": [date(2026, 1, 2)] * 2}
    )
    text = csv_bytes(frame)
    assert (
        text
        == csv_bytes(frame.iloc[::-1])
        == b"CUSTOMER_ID,MONETARY,SNAPSHOT_DATE\na,2.50,2026-01-02\nb,0.33,2026-01-02\n"
    )
    assert resolve_export_folder(tmp_path, "out/x") == (tmp_path / "out" / "x").resolve()
    for outside in ("../elsewhere", "/tmp", "out/../../x"):
        with pytest.raises(InvalidParametersError, match="outside the project"):
            resolve_export_folder(tmp_path, outside)
    assert (
        resolve_export_folder(tmp_path, "../elsewhere", allow_outside=True)
        == (tmp_path.parent / "elsewhere").resolve()
    )
    assert file_name(3, "At risk (high spend)") == "segment_003_at_risk_high_spend.csv"


def test_simulation_reuses_the_demo_population_and_is_deterministic() -> None:
    seeded = generate_events(n_customers=120, seed=5)
    population = demo_population(120, 5)
    assert set(seeded["CUSTOMER_ID"].dropna()) <= set(population.customer_ids)
    a = simulate_events(date(2026, 11, 1), 20, population, seed=5)
    b = simulate_events(date(2026, 11, 1), 20, population, seed=5)
    pd.testing.assert_frame_equal(a, b)
    assert a["EVENT_ID"].is_unique and (a["SOURCE_ROW"] == np.arange(1, len(a) + 1)).all()
    assert a["EVENT_TS"].min() >= "2026-11-01" and a["EVENT_TS"].max() < "2026-11-21"
    assert (a["LOADED_AT"] == pd.Timestamp("2026-11-21 06:00:00")).all()
    assert a["SOURCE_FILE"].str.startswith("demo://simulate/").all()
    assert not a.equals(simulate_events(date(2026, 11, 1), 20, population, seed=6))


def test_silent_personas_place_no_order() -> None:
    population = demo_population(300, 11)
    champions = {c for c, p in zip(population.customer_ids, population.personas) if p == "champion"}
    normal = simulate_events(date(2026, 11, 1), 30, population, seed=11)
    assert set(normal["CUSTOMER_ID"]) & champions  # champions do buy in a normal month
    quiet = simulate_events(date(2026, 11, 1), 30, population, seed=11, silent_personas=["champion"])
    assert not set(quiet["CUSTOMER_ID"]) & champions
    wave = simulate_events(date(2026, 11, 1), 30, population, seed=11, arrival_multiplier=10)
    newcomers = lambda f: f.loc[f["CUSTOMER_ID"].str.startswith("C-N"), "CUSTOMER_ID"].nunique()  # noqa: E731
    assert newcomers(wave) > 5 * max(newcomers(normal), 1)
    with pytest.raises(ValueError, match="unknown persona"):
        simulate_events(date(2026, 11, 1), 3, population, silent_personas=["vip"])


def test_simulation_parameters() -> None:
    assert SimulateDaysParams.of(days="30").days == 30
    for bad in (None, 0, -3, "x", 4000):
        with pytest.raises(InvalidParametersError, match="simulate_days.days"):
            SimulateDaysParams.of(days=bad)

    def personas(value: object) -> list[str]:
        return SimulateDaysParams.of(silent_personas=value).silent_personas

    assert personas("champion, loyal") == personas("champion;loyal") == ["champion", "loyal"]
    assert personas(None) == [] and personas(["new"]) == ["new"]


def test_simulation_refuses_real_snowflake_before_reading_anything() -> None:
    from customer_segmentation.pipelines.simulate_days.nodes import SimulationRefusedError, check_demo_only

    with pytest.raises(SimulationRefusedError, match="real Snowflake"):
        check_demo_only(None, {"embedded_warehouse": False})  # type: ignore[arg-type]


@pytest.mark.parametrize("values_per_query", [10**9, 300, 100])
def test_segment_medians_are_exact_whatever_the_number_of_queries(
    warehouse_session: Any, monkeypatch: Any, values_per_query: int
) -> None:
    """Medians in one query, two features per query or one: all equal pandas (even counts, ties, NULLs)."""
    from customer_segmentation.pipelines.monitoring import nodes

    rng = np.random.default_rng(7)
    rows = 150
    frame = pd.DataFrame(
        {
            "SEGMENT_ID": rng.integers(0, 4, rows),
            "RECENCY_DAYS": rng.integers(0, 5, rows),  # heavy ties
            "FREQUENCY": rng.integers(1, 3, rows),
            "MONETARY": np.round(rng.lognormal(4, 1, rows), 2),
        }
    )
    frame.loc[::7, "MONETARY"] = np.nan  # MEDIAN ignores NULLs, as pandas does NaN
    features = ["RECENCY_DAYS", "FREQUENCY", "MONETARY"]
    monkeypatch.setattr(nodes, "MEDIAN_VALUES_PER_QUERY", values_per_query)
    warehouse_session.sql(
        "CREATE TABLE T_MEDIANS (SEGMENT_ID INT, RECENCY_DAYS INT, FREQUENCY INT, MONETARY NUMBER(12, 2))"
    ).collect()
    warehouse_session.write_pandas(frame, "T_MEDIANS", auto_create_table=False)
    got = (
        nodes._segment_medians(warehouse_session.table("T_MEDIANS"), features, rows)
        .set_index("SEGMENT_ID")
        .sort_index()
    )
    expected = frame.groupby("SEGMENT_ID")[features].median().add_prefix("MEDIAN_")
    assert list(got.index) == list(expected.index)
    for column in expected.columns:
        assert got[column].astype(float).to_numpy() == pytest.approx(expected[column].to_numpy())
