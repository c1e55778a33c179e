"""Training nodes: parameter checks, k choice, segment naming, determinism, stability."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.pipelines.training.nodes import (
    choose_k,
    evaluate_k_range,
    fit_segmentation_model,
    measure_stability,
    training_metrics,
)
from customer_segmentation.pipelines.training.params import TrainingParams
from tests.pipelines.training.histories import check_naming, classic_rfm

FEATURES = ["RECENCY_DAYS", "FREQUENCY", "MONETARY", "AVG_ORDER_VALUE", "RETURN_RATE"]
PARAMS = TrainingParams.of(
    {
        "features": FEATURES,
        "log_features": ["RECENCY_DAYS", "FREQUENCY", "MONETARY", "AVG_ORDER_VALUE"],
        "k_min": 2,
        "k_max": 6,
        "k": None,
        "n_init": 3,
        "random_state": 11,
        "silhouette_sample_size": 1000,
        "bootstrap_rounds": 3,
        "sample_size": 100000,
        "scatter_sample_size": 200,
    }
)


def planted_customers(n_per_group: int = 300, seed: int = 0) -> pd.DataFrame:
    """Three well-separated behaviours: champions, occasional, lost."""
    rng = np.random.default_rng(seed)
    groups = [
        (
            rng.integers(1, 20, n_per_group),
            rng.integers(15, 40, n_per_group),
            rng.normal(4000, 500, n_per_group),
        ),
        (
            rng.integers(60, 150, n_per_group),
            rng.integers(2, 5, n_per_group),
            rng.normal(300, 60, n_per_group),
        ),
        (
            rng.integers(400, 700, n_per_group),
            rng.integers(1, 2, n_per_group),
            rng.normal(40, 10, n_per_group),
        ),
    ]
    frames = []
    for g, (recency, frequency, monetary) in enumerate(groups):
        monetary = np.clip(monetary, 1, None)
        frames.append(
            pd.DataFrame(
                {
                    "CUSTOMER_ID": [f"C{g}-{i:05d}" for i in range(n_per_group)],
                    "RECENCY_DAYS": recency.astype(float),
                    "FREQUENCY": frequency.astype(float),
                    "MONETARY": monetary,
                    "AVG_ORDER_VALUE": monetary / frequency,
                    "RETURN_RATE": (0.02, 0.10, 0.25)[g] + rng.normal(0, 0.01, n_per_group),
                    "GROUP": g,
                }
            )
        )
    # the classic RFM segment of each customer, as rfm_features computes it for the whole population
    return classic_rfm(pd.concat(frames, ignore_index=True))


@pytest.fixture(scope="module")
def sample() -> pd.DataFrame:
    return planted_customers()


@pytest.fixture(scope="module")
def selection(sample: pd.DataFrame) -> pd.DataFrame:
    return evaluate_k_range(sample, PARAMS)


def test_every_k_reports_all_criteria(selection: pd.DataFrame) -> None:
    assert selection["k"].tolist() == [2, 3, 4, 5, 6]
    assert selection[["inertia", "silhouette", "calinski_harabasz", "davies_bouldin"]].notna().all().all()
    assert selection["inertia"].is_monotonic_decreasing


def test_planted_clusters_are_found(selection: pd.DataFrame) -> None:
    choice = choose_k(selection, PARAMS)
    assert choice["k"] == 3 and choice["elbow_k"] == 3
    assert set(choice["best_k_by"]) == {"silhouette", "calinski_harabasz", "davies_bouldin"}
    assert choice["note"]


def test_k_override_wins(selection: pd.DataFrame) -> None:
    choice = choose_k(selection, TrainingParams.of(PARAMS, k=5))
    assert choice["k"] == 5 and choice["source"].startswith("override")


def test_no_elbow_falls_back_to_silhouette() -> None:
    flat = pd.DataFrame(
        {
            "k": [2, 3, 4],
            "inertia": [10.0, 10.0, 10.0],
            "silhouette": [0.1, 0.5, 0.2],
            "calinski_harabasz": [1.0, 2.0, 1.0],
            "davies_bouldin": [2.0, 1.0, 2.0],
        }
    )
    choice = choose_k(flat, PARAMS)
    assert choice["elbow_k"] is None
    assert choice["k"] == 3 and "silhouette" in choice["source"]


@pytest.mark.parametrize(
    ("bad", "named"),
    [
        ({"k_min": 1}, "training.k_min: Input should be greater than or equal to 2"),
        ({"k_min": 5, "k_max": 3}, "training.k_min/k_max must satisfy 2 <= k_min <= k_max"),
        ({"k": 1}, "training.k: Input should be greater than or equal to 2"),
        ({"sample_size": 3}, "training.sample_size: Input should be greater than or equal to 10"),
        ({"log_features": ["NOT_A_FEATURE"]}, "training.log_features must be a subset of training.features"),
        ({"features": ["FREQUENCY"], "log_features": []}, "training.features must include RECENCY_DAYS"),
        ({"features": []}, "training.features: List should have at least 1 item"),
        ({"k_mn": 3}, "training.k_mn: Extra inputs are not permitted"),
        ({"n_init": "many"}, "training.n_init: Input should be a valid integer"),
    ],
)
def test_invalid_parameters_are_refused(bad: dict, named: str) -> None:
    with pytest.raises(InvalidParametersError, match=re.escape(named)):
        TrainingParams.of(PARAMS, **bad)


def test_defaults_live_in_the_model_and_match_the_configuration() -> None:
    import yaml

    from tests.conftest import PROJECT_ROOT

    configured = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_training.yml").read_text())["training"]
    assert TrainingParams.of(configured) == TrainingParams()


def test_planted_groups_are_named_after_their_members(sample: pd.DataFrame) -> None:
    model = fit_segmentation_model(sample, {"k": 3, "source": "test"}, PARAMS, {"run_id": "v"})
    check_naming(sample, model.estimator.labels_, model)
    by_group = pd.Series(model.label_of(model.predict(sample))).groupby(sample["GROUP"]).first()
    # recent heavy buyers, mid-recency few-order buyers, long-gone one-order buyers (R and F quintiles)
    assert by_group[0] == "Champions" and by_group[2] == "Lost"
    assert all(s["faithfulness"] > 0.3 for s in model.segment_stats)


def test_model_is_deterministic_and_named(sample: pd.DataFrame) -> None:
    choice = {"k": 3, "source": "test"}
    first = fit_segmentation_model(sample, choice, PARAMS, {"run_id": "v1"})
    second = fit_segmentation_model(
        sample.sample(frac=1.0, random_state=5).sort_values("CUSTOMER_ID"), choice, PARAMS, {"run_id": "v2"}
    )
    np.testing.assert_array_equal(first.predict(sample), second.predict(sample))
    assert first.labels == second.labels
    assert len(set(first.labels)) == 3
    assert first.version == "v1"
    # the model's own predict equals scikit-learn's
    np.testing.assert_array_equal(first.predict(sample), first.estimator.predict(first.transform(sample)))
    # each planted group lands in one segment
    assigned = pd.Series(first.predict(sample)).groupby(sample["GROUP"]).nunique()
    assert (assigned == 1).all()
    shares = [s["customer_share"] for s in first.segment_stats]
    assert sum(shares) == pytest.approx(1.0)


def test_stability_on_planted_clusters_is_high(sample: pd.DataFrame) -> None:
    model = fit_segmentation_model(sample, {"k": 3, "source": "test"}, PARAMS, {"run_id": "v"})
    stability = measure_stability(sample, model, PARAMS)
    assert stability["ari_mean"] > 0.85 and stability["verdict"] == "highly stable"
    metrics = training_metrics(
        evaluate_k_range(sample, PARAMS), {"k": 3, "source": "t"}, stability, model, sample
    )
    assert metrics["k"] == 3 and len(metrics["segments"]) == 3 and metrics["silhouette"] > 0.5


def test_settled_partition_is_a_fixed_point_independent_of_last_bit_noise(sample: pd.DataFrame) -> None:
    from customer_segmentation.model import SegmentationModel
    from customer_segmentation.segmentation_training import nearest_centroid, settle

    space = SegmentationModel.learn_transform(sample, PARAMS.features, PARAMS.log_features)
    x = space.transform(sample)
    rng = np.random.default_rng(3)
    start = x[rng.choice(len(x), 4, replace=False)]  # a poor start: several Lloyd steps to go
    centroids, labels, inertia, iterations = settle(x, start)
    assert iterations > 1
    # a fixed point: every member nearest its own centroid, every centroid the mean of its members
    assert (nearest_centroid(np.ascontiguousarray(x.T), centroids)[0] == labels).all()
    for j in range(4):
        np.testing.assert_allclose(centroids[j], x[labels == j].mean(axis=0), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(inertia, ((x - centroids[labels]) ** 2).sum(), rtol=1e-12)
    # centroids off by a few units in the last place (what thread scheduling does to sums) settle
    # on the same partition and the same bits
    noisy = centroids * (1 + rng.choice([-1, 1], centroids.shape) * 4 * np.finfo(float).eps)
    again = settle(x, noisy)
    np.testing.assert_array_equal(again[0], centroids)
    np.testing.assert_array_equal(again[1], labels)
    assert again[2] == inertia


def test_candidates_are_chosen_by_inertia_and_the_active_model_wins_ties(sample: pd.DataFrame) -> None:
    from customer_segmentation.segmentation_training import candidate_seeds

    model = fit_segmentation_model(sample, {"k": 4, "source": "test"}, PARAMS, {"run_id": "c"})
    report = model.metrics["partition"]
    inertias = [c["inertia"] for c in report["candidates"]]
    assert len(inertias) == PARAMS.n_init and report["inertia"] == min(inertias)
    assert (
        report["chosen"] == report["candidates"][inertias.index(min(inertias))]["start"]
    )  # the first of equals
    assert [c["start"] for c in report["candidates"]] == [
        f"k-means++ seed {s}" for s in candidate_seeds(PARAMS.random_state, PARAMS.n_init)
    ]
    assert not report["kept_active_model"] and report["active_model"] == "no active model"
    # no seed is shared between two random states (a reseed is a genuinely different fit)
    assert not set(candidate_seeds(11, 8)) & set(candidate_seeds(12, 8))
    # the model as the active one: its partition is the first candidate, ties with itself, and stays
    again = fit_segmentation_model(sample, {"k": 4, "source": "test"}, PARAMS, {"run_id": "d"}, model)
    first = again.metrics["partition"]["candidates"][0]
    assert (
        first["start"] == "active model c" and first["inertia"] == report["inertia"] and first["moved"] == 0
    )
    assert again.metrics["partition"]["kept_active_model"]
    np.testing.assert_array_equal(again.centroids, model.centroids)
    # another k: the active model cannot take part, and says why
    other = fit_segmentation_model(sample, {"k": 3, "source": "test"}, PARAMS, {"run_id": "e"}, model)
    assert other.metrics["partition"]["active_model"] == "the active model c has k=4, this fit k=3"


def test_a_former_warm_start_tolerance_still_validates_with_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level("WARNING"):
        params = TrainingParams.of(PARAMS, warm_start_tolerance=0.02)
    assert params.warm_start_tolerance == 0.02  # an older configuration does not stop the run...
    assert "warm_start_tolerance (0.02) no longer has an effect" in caplog.text  # ...and says why
    caplog.clear()
    with caplog.at_level("WARNING"):
        TrainingParams.of(PARAMS)
    assert "warm_start_tolerance" not in caplog.text


def test_k_selection_and_stability_do_not_depend_on_the_number_of_threads() -> None:
    """KMeans runs on one OpenMP thread inside training (model.one_openmp_thread): the k range's
    inertias and the bootstrap scores are the same to the last bit whatever threads the process
    allows, as on a laptop and a cloud job with other core counts."""
    import sklearn.cluster  # noqa: F401 - its OpenMP runtime loaded, so that the limits below apply
    from threadpoolctl import threadpool_info, threadpool_limits

    from customer_segmentation.model import one_openmp_thread

    with one_openmp_thread():
        assert {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"} <= {1}
    customers = planted_customers(n_per_group=6000, seed=5)  # 18k rows: 70 chunks of 256 rows to share
    params = TrainingParams.of(PARAMS.model_dump(), k_max=5, bootstrap_rounds=2)
    results = []
    for threads in (1, 4):
        with threadpool_limits(limits=threads, user_api="openmp"):
            selection = evaluate_k_range(customers, params)
            model = fit_segmentation_model(customers, {"k": 3, "source": "test"}, params, {"run_id": "v"})
            results.append((selection, measure_stability(customers, model, params), model.centroids))
    (sel_1, stab_1, cent_1), (sel_4, stab_4, cent_4) = results
    pd.testing.assert_frame_equal(sel_1, sel_4, check_exact=True)
    assert stab_1["ari_scores"] == stab_4["ari_scores"]
    np.testing.assert_array_equal(cent_1, cent_4)


def test_fits_run_side_by_side_with_the_sequential_results(monkeypatch: pytest.MonkeyPatch) -> None:
    """The k range, the candidates of the final fit and the bootstrap refits run on several threads
    (segmentation_training._one_thread_each): each on one OpenMP thread, in the items' order, so
    the results are the sequential ones to the last bit; an error in one fit is raised."""
    import sklearn.cluster  # noqa: F401 - its OpenMP runtime loaded, so that threadpool_info reports it
    from threadpoolctl import threadpool_info

    from customer_segmentation import segmentation_training as st

    customers = planted_customers(n_per_group=3000, seed=9)
    params = TrainingParams.of(PARAMS.model_dump(), k_max=6, bootstrap_rounds=3, n_init=3)
    results = []
    for workers in (1, 4):
        monkeypatch.setattr(st, "MAX_PARALLEL_FITS", workers)
        monkeypatch.setattr(st.os, "cpu_count", lambda: 4)  # side by side on a one-core machine too
        selection = evaluate_k_range(customers, params)
        model = fit_segmentation_model(customers, {"k": 3, "source": "test"}, params, {"run_id": "p"})
        results.append((selection, measure_stability(customers, model, params), model))
    (sel_1, stab_1, model_1), (sel_4, stab_4, model_4) = results
    pd.testing.assert_frame_equal(sel_1, sel_4, check_exact=True)
    assert stab_1["ari_scores"] == stab_4["ari_scores"]
    np.testing.assert_array_equal(model_1.centroids, model_4.centroids)
    assert model_1.metrics["partition"] == model_4.metrics["partition"]

    def threads_and_name(item: int) -> tuple[int, set[int], str]:
        import threading

        openmp = {i["num_threads"] for i in threadpool_info() if i["user_api"] == "openmp"}
        return item, openmp, threading.current_thread().name

    ran = st._one_thread_each(threads_and_name, list(range(6)))
    assert [item for item, _, _ in ran] == list(range(6))  # the items' order
    assert all(openmp <= {1} for _, openmp, _ in ran)  # one OpenMP thread in every worker
    assert {name.split("_")[0] for _, _, name in ran} == {"kmeans"}  # on the pool's threads

    def fails_on_three(item: int) -> int:
        if item == 3:
            raise ValueError("fit 3 failed")
        return item

    with pytest.raises(ValueError, match="fit 3 failed"):
        st._one_thread_each(fails_on_three, list(range(6)))
