"""Segment names follow their members: plurality classic RFM segment, qualifiers from member medians.

The histories here were not generated from the naming rules: they are order streams turned into
CUSTOMER_FEATURES by the warehouse code, and every check recomputes the answer with pandas.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.errors import MissingColumnsError
from customer_segmentation.pipelines.training.nodes import (
    choose_k,
    evaluate_k_range,
    fit_segmentation_model,
    measure_stability,
    training_metrics,
)
from customer_segmentation.pipelines.training.params import TrainingParams
from customer_segmentation.segment_naming import choose_base_names, name_segments
from customer_segmentation.segmentation_sample import sample_customer_features
from tests.pipelines.training.histories import (
    TRAINING,
    check_naming,
    classic_rfm,
    customer_features,
    make_orders,
)

FEATURES = ["RECENCY_DAYS", "FREQUENCY", "MONETARY", "SPEND_TREND"]
LOGS = ["RECENCY_DAYS", "FREQUENCY", "MONETARY"]


def members(rows: list[tuple[int, str, float, float, float, float, int]]) -> tuple[pd.DataFrame, np.ndarray]:
    """(count, RFM segment, recency, frequency, monetary, trend, cluster) blocks -> sample, assignment."""
    frames, assigned = [], []
    for count, segment, recency, frequency, monetary, trend, cluster in rows:
        frames.append(
            pd.DataFrame(
                {
                    "RFM_SEGMENT": [segment] * count,
                    "RECENCY_DAYS": [recency] * count,
                    "FREQUENCY": [frequency] * count,
                    "MONETARY": [monetary] * count,
                    "SPEND_TREND": [trend] * count,
                }
            )
        )
        assigned += [cluster] * count
    return pd.concat(frames, ignore_index=True), np.array(assigned)


def counts(**cells: int) -> pd.Series:
    return (
        pd.Series(cells)
        .rename(index=lambda s: s.replace("_", " "))
        .sort_values(ascending=False, kind="stable")
    )


# --- the rule on hand-made memberships ---------------------------------------------------------


def test_base_name_is_the_members_plurality() -> None:
    sample, assigned = members(
        [
            (60, "Lost", 500, 1, 30, 0, 0),
            (40, "Hibernating", 300, 1, 40, 0, 0),
            (70, "Champions", 10, 20, 3000, 0.5, 1),
            (30, "Loyal customers", 60, 12, 2000, 0, 1),
        ]
    )
    names = name_segments(sample, assigned, 2, FEATURES, LOGS)
    assert names.labels == ["Lost", "Champions"] and names.base_labels == ["Lost", "Champions"]
    assert names.faithfulness == [pytest.approx(0.6), pytest.approx(0.7)]
    assert names.descriptions[0].startswith(
        "Median customer: last order 500 days ago, 1 order, 30 net spend;"
    )
    assert "60% of members are classic-RFM Lost" in names.descriptions[0]


def test_cluster_spanning_two_cells_takes_its_second_when_another_holds_more_of_the_first() -> None:
    # cluster 0: 60 Champions + 40 Loyal; cluster 1: 90 Champions -> 1 keeps Champions, 0 is Loyal customers
    assert choose_base_names([counts(Champions=60, Loyal_customers=40), counts(Champions=90, At_risk=5)]) == [
        "Loyal customers",
        "Champions",
    ]
    # the cell goes to the cluster holding more of its customers, even if that is a smaller share of it
    assert choose_base_names([counts(Lost=300, Hibernating=250), counts(Lost=20, About_to_sleep=5)]) == [
        "Lost",
        "Lost",
    ]


def test_a_small_second_cell_is_not_a_span_so_the_name_is_kept_and_qualified() -> None:
    sample, assigned = members(
        [
            (80, "Champions", 5, 30, 5000, 0.6, 0),
            (20, "Loyal customers", 40, 20, 3000, 0.1, 0),
            (90, "Champions", 40, 8, 900, -0.4, 1),
            (10, "Potential loyalists", 30, 3, 300, 0.0, 1),
        ]
    )
    names = name_segments(sample, assigned, 2, FEATURES, LOGS)
    # Loyal (20) < half of Champions (80) -> no span; both keep Champions, told apart by what differs most
    assert names.base_labels == ["Champions", "Champions"]
    assert len(set(names.labels)) == 2
    assert names.labels[0].startswith("Champions (") and names.labels[1].startswith("Champions (")


def test_qualifier_names_the_separating_feature_in_the_direction_of_the_medians() -> None:
    # the case: same median spend, different recency and trend; the mean spend is misleading
    sample, assigned = members(
        [
            (50, "Champions", 30, 6, 170, 1.0, 0),
            (1, "Champions", 30, 6, 90_000, 1.0, 0),
            (50, "Champions", 112, 6, 170, -1.0, 1),
            (10, "Champions", 112, 6, 160, -1.0, 1),
        ]
    )
    names = name_segments(sample, assigned, 2, FEATURES, LOGS)
    # recency and trend separate them about equally (two point masses each); spend never does
    assert names.labels in (
        ["Champions (rising spend)", "Champions (falling spend)"],
        ["Champions (more recent)", "Champions (less recent)"],
    )
    names = name_segments(sample, assigned, 2, ["MONETARY", "FREQUENCY", "SPEND_TREND"], LOGS)
    assert names.labels == ["Champions (rising spend)", "Champions (falling spend)"]
    # without the trend feature, recency is what separates them
    names = name_segments(sample, assigned, 2, FEATURES[:3], LOGS)
    assert names.labels == ["Champions (more recent)", "Champions (less recent)"]
    assert "spend" not in names.labels[0]


def test_three_clusters_with_one_name_are_split_feature_by_feature() -> None:
    sample, assigned = members(
        [
            (40, "Lost", 600, 1, 20, 0, 0),
            (40, "Lost", 610, 1, 400, 0, 1),
            (40, "Lost", 350, 1, 25, 0, 2),
        ]
    )
    names = name_segments(sample, assigned, 3, FEATURES, LOGS)
    assert len(set(names.labels)) == 3
    assert names.labels[2] == "Lost (more recent)"
    assert set(names.labels[:2]) == {"Lost (less recent, lower spend)", "Lost (less recent, higher spend)"}
    assert names.labels[1] == "Lost (less recent, higher spend)"


def test_trend_words_are_comparative_when_both_sides_rise() -> None:
    sample, assigned = members([(30, "Champions", 10, 9, 900, 0.9, 0), (30, "Champions", 10, 9, 900, 0.2, 1)])
    assert name_segments(sample, assigned, 2, FEATURES, LOGS).labels == [
        "Champions (higher spend trend)",
        "Champions (lower spend trend)",
    ]


def test_identical_clusters_still_get_unique_labels() -> None:
    sample, assigned = members([(10, "Lost", 500, 1, 30, 0, 0), (10, "Lost", 500, 1, 30, 0, 1)])
    assert name_segments(sample, assigned, 2, FEATURES, LOGS).labels == ["Lost (group 1)", "Lost (group 2)"]


def test_sample_without_rfm_segment_says_what_to_rerun() -> None:
    sample, assigned = members([(10, "Lost", 500, 1, 30, 0, 0)])
    with pytest.raises(MissingColumnsError, match="rfm_features"):
        name_segments(sample.drop(columns="RFM_SEGMENT"), assigned, 1, FEATURES, LOGS)


# --- synthetic histories through the warehouse --------------------------------------------------


def one_time_buyer_history(n: int = 1200, seed: int = 5) -> pd.DataFrame:
    """~70% single-order customers, a handful of price points (heavy ties), some all-cancelled, returns."""
    rng = np.random.default_rng(seed)
    prices = [9.99, 19.99, 19.99, 29.99, 49.99]
    customers = []
    for c in range(n):
        u = rng.random()
        n_orders = (
            1
            if u < 0.70
            else int(rng.integers(2, 4))
            if u < 0.88
            else int(rng.integers(4, 16))
            if u < 0.97
            else int(rng.integers(1, 3))
        )
        all_cancelled = u >= 0.97
        last = int(rng.integers(0, 700))
        days = [last]
        for _ in range(n_orders - 1):
            days.append(min(days[-1] + int(rng.integers(15, 120)), 729))
        amounts = [float(rng.choice(prices)) for _ in days]
        returned = [a if rng.random() < 0.05 else 0.0 for a in amounts]
        cats = [str(rng.choice(["a", "b", "c", "d"])) for _ in days]
        customers.append((f"U{c:05d}", days, amounts, [all_cancelled] * n_orders, returned, cats))
    return make_orders(customers)


def recency_only_history(seed: int = 9) -> pd.DataFrame:
    """Two groups with the same frequency, spend, tenure and category mix whose last orders differ in age,
    among recent one-order buyers and heavy recent buyers."""
    rng = np.random.default_rng(seed)
    customers = []

    def add(
        prefix: str,
        count: int,
        last: tuple[int, int],
        orders: tuple[int, int],
        first: tuple[int, int] | None,
        price: float,
        spread: float,
    ) -> None:
        for c in range(count):
            n_orders = int(rng.integers(*orders))
            recency = int(rng.integers(*last))
            start = int(rng.integers(*first)) if first else recency
            days = (
                list(np.linspace(start, recency, n_orders).round().astype(int)) if n_orders > 1 else [recency]
            )
            amounts = list(np.round(rng.lognormal(price, spread, n_orders), 2))
            cats = [
                str(rng.choice(["a", "b", "c"])) if prefix == "H" else "ab"[n % 2] for n in range(len(days))
            ]
            customers.append((f"{prefix}{c:04d}", days, amounts, [False] * n_orders, [0.0] * n_orders, cats))

    add("A", 400, (20, 61), (1, 2), None, 3.2, 0.05)  # recent single-order buyers, one price point
    add("H", 200, (1, 31), (15, 31), (300, 700), 4.6, 0.3)  # heavy recent buyers, larger baskets
    add("X", 200, (190, 231), (3, 6), (715, 730), 4.0, 0.2)  # same orders, spend and tenure as Y ...
    add("Y", 200, (600, 701), (3, 6), (715, 730), 4.0, 0.2)  # ... but the last order ~440 days older
    return make_orders(customers)


@pytest.fixture
def one_time_buyers(warehouse_session: Any) -> pd.DataFrame:
    return sample_customer_features(customer_features(warehouse_session, one_time_buyer_history()), TRAINING)


def test_warehouse_rfm_scores_on_tied_one_time_buyers_equal_pandas(one_time_buyers: pd.DataFrame) -> None:
    sample = one_time_buyers
    assert 0.65 < (sample["FREQUENCY"] == 1).mean() < 0.75
    assert sample["MONETARY"].value_counts().iloc[0] > 100  # heavy ties
    expected = classic_rfm(sample[["CUSTOMER_ID", "RECENCY_DAYS", "FREQUENCY", "MONETARY"]])
    for column in ("R_SCORE", "F_SCORE", "M_SCORE"):
        np.testing.assert_array_equal(sample[column].astype(int), expected[column])
    assert (sample["RFM_SEGMENT"] == expected["RFM_SEGMENT"]).all()


def test_names_on_one_time_buyers_follow_members(one_time_buyers: pd.DataFrame) -> None:
    sample = one_time_buyers
    choice = choose_k(evaluate_k_range(sample, TRAINING), TRAINING)
    model = fit_segmentation_model(sample, choice, TRAINING, {"run_id": "t"})
    table = check_naming(sample, model.estimator.labels_, model)
    # customers whose every order was cancelled are named like everyone else: after their cluster's members
    cancelled = sample["FREQUENCY"] == 0
    assert cancelled.sum() > 20
    home = pd.Series(model.estimator.labels_[cancelled.to_numpy()]).value_counts().index[0]
    members_rfm = sample.loc[model.estimator.labels_ == home, "RFM_SEGMENT"].value_counts()
    assert members_rfm[model.base_labels[home]] == members_rfm.max()
    assert "no order kept" in model.descriptions[home]
    metrics = training_metrics(
        evaluate_k_range(sample, TrainingParams.of(TRAINING, k_min=model.k, k_max=model.k)),
        choice,
        measure_stability(sample, model, TRAINING),
        model,
        sample,
    )
    assert [s["faithfulness"] for s in metrics["segments"]] == pytest.approx(table["share"].tolist())
    assert metrics["naming"]["faithful_share"] == pytest.approx(
        (table["share"] * table["size"]).sum() / table["size"].sum()
    )


def test_two_clusters_differing_only_by_recency_are_qualified_by_recency(warehouse_session: Any) -> None:
    sample = sample_customer_features(customer_features(warehouse_session, recency_only_history()), TRAINING)
    model = fit_segmentation_model(sample, {"k": 4, "source": "test"}, TRAINING, {"run_id": "t"})
    check_naming(sample, model.estimator.labels_, model)
    group = sample["CUSTOMER_ID"].str[0]
    cluster_of = pd.crosstab(group, model.estimator.labels_).idxmax(axis=1)
    x, y = int(cluster_of["X"]), int(cluster_of["Y"])
    assert x != y
    # both groups are classic "At risk" (R 1-2, F 3-4): the qualifier must be recency, the right way round
    assert model.base_labels[x] == model.base_labels[y] == "At risk"
    assert model.labels[x] == "At risk (more recent)"
    assert model.labels[y] == "At risk (less recent)"


def test_tied_cells_go_to_the_one_nearest_the_members_median_scores() -> None:
    # all orders cancelled, last order about a year ago: equal counts in three cells
    sample = pd.DataFrame(
        {
            "RFM_SEGMENT": ["New customers"] * 5 + ["About to sleep"] * 5 + ["Hibernating"] * 5,
            "R_SCORE": [5] * 5 + [3] * 5 + [2] * 5,
            "F_SCORE": [1] * 15,
            "RECENCY_DAYS": [20.0] * 5 + [300.0] * 10,
            "FREQUENCY": [0.0] * 15,
            "MONETARY": [0.0] * 15,
            "SPEND_TREND": [0.0] * 15,
        }
    )
    names = name_segments(sample, np.zeros(15, dtype=int), 1, FEATURES, LOGS)
    assert names.labels == ["About to sleep"]  # median R 3, F 1: inside "About to sleep"
    assert names.faithfulness == [pytest.approx(1 / 3)]
    assert "no order kept (all cancelled)" in names.descriptions[0]


def test_a_feature_that_splits_three_ways_says_more_so() -> None:
    sample, assigned = members(
        [
            (20, "Lost", 500, 1, 10, 0, 0),
            (20, "Lost", 500, 1, 1000, 0, 1),
            (20, "Lost", 500, 1, 1500, 0, 2),
        ]
    )
    labels = name_segments(sample, assigned, 3, FEATURES, LOGS).labels
    assert labels == ["Lost (lower spend)", "Lost (higher spend, less so)", "Lost (higher spend, more so)"]


def test_direction_follows_medians_even_when_means_disagree() -> None:
    # A: median spend 170 but half its members spent 1 (low mean); B: median 160, mean higher than A's
    sample, assigned = members(
        [
            (26, "Champions", 30, 6, 170, 0, 0),
            (25, "Champions", 30, 6, 1, 0, 0),
            (26, "Champions", 30, 6, 160, 0, 1),
            (25, "Champions", 30, 6, 150, 0, 1),
        ]
    )
    names = name_segments(sample, assigned, 2, ["FREQUENCY", "MONETARY"], LOGS)
    assert names.labels == ["Champions (higher spend)", "Champions (lower spend)"]
    assert names.medians[0]["MONETARY"] == 170 and names.medians[1]["MONETARY"] == 160


def test_sample_from_features_without_rfm_columns_says_what_to_rerun(warehouse_session: Any) -> None:
    warehouse_session.sql(
        "CREATE TABLE OLD_FEATURES AS SELECT 'C' || SEQ4() AS CUSTOMER_ID, 1.0 AS RECENCY_DAYS, 1.0 AS FREQUENCY, "
        "1.0 AS MONETARY FROM TABLE(GENERATOR(ROWCOUNT => 20))"
    ).collect()
    params = TrainingParams.of(TRAINING, features=["RECENCY_DAYS", "FREQUENCY", "MONETARY"], log_features=[])
    with pytest.raises(MissingColumnsError, match="RFM_SEGMENT.*rfm_features"):
        sample_customer_features(warehouse_session.table("OLD_FEATURES"), params)
