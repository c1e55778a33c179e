"""End to end on the embedded warehouse: full run, prediction alone, reruns, error paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import make_project_copy, run_pipeline, warehouse_rows

pytestmark = pytest.mark.integration


def test_full_run_then_prediction_then_rerun(trained_project: Path, tmp_path: Path) -> None:
    project = trained_project
    valid_customers = warehouse_rows(
        project,
        "SELECT COUNT(DISTINCT CUSTOMER_ID) FROM PUBLIC.TRANSFORMED_DATA WHERE EVENT_TYPE = 'ORDER_CREATED'",
    )[0][0]
    assert 300 < valid_customers <= 400  # the tests' small demo (demo_data.n_customers=400)
    rows = warehouse_rows(
        project,
        "SELECT COUNT(*), COUNT(DISTINCT CUSTOMER_ID), COUNT(SEGMENT_LABEL), COUNT(SEGMENT_ID) FROM PUBLIC.PROCESSED_DATA",
    )[0]
    assert rows == (valid_customers, valid_customers, valid_customers, valid_customers)
    first_run_ids = warehouse_rows(project, "SELECT DISTINCT RUN_ID FROM PUBLIC.PROCESSED_DATA")
    assert len(first_run_ids) == 1
    assert list((project / "data" / "06_models" / "segmentation_model.joblib").iterdir())

    run_pipeline(project, "prediction")
    run_pipeline(project, "store_results")
    after = warehouse_rows(
        project,
        "SELECT COUNT(*), COUNT(DISTINCT CUSTOMER_ID), SUM(CASE WHEN IS_NEW_CUSTOMER THEN 1 ELSE 0 END) FROM PUBLIC.PROCESSED_DATA",
    )[0]
    assert after == (valid_customers, valid_customers, 0)  # replaced, not duplicated; nobody new
    assert warehouse_rows(project, "SELECT DISTINCT RUN_ID FROM PUBLIC.PROCESSED_DATA") != first_run_ids


@pytest.mark.slow
def test_second_full_run_is_safe_and_runs_are_deterministic(trained_project: Path, tmp_path: Path) -> None:
    from tests.integration.test_reruns import newest_model, plant_perturbed_model

    project = make_project_copy(tmp_path / "p")
    run_pipeline(project)
    segments_sql = "SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL, RFM_SEGMENT FROM PUBLIC.PROCESSED_DATA ORDER BY CUSTOMER_ID"
    # same demo data and seeds in another folder -> the same segments
    assert warehouse_rows(project, segments_sql) == warehouse_rows(trained_project, segments_sql)
    counts = warehouse_rows(
        project,
        "SELECT (SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA), (SELECT COUNT(*) FROM PUBLIC.PROCESSED_DATA)",
    )[0]
    # the second run trains with a previous model whose centroids no fit on this data gives: the
    # partition must come from the data alone (a fit that started from those centroids would not)
    plant_perturbed_model(project, project)
    run_pipeline(project)
    assert newest_model(project) == newest_model(trained_project)  # the same model, to the last bit
    assert warehouse_rows(project, segments_sql) == warehouse_rows(trained_project, segments_sql)
    assert (
        warehouse_rows(
            project,
            "SELECT (SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA), (SELECT COUNT(*) FROM PUBLIC.PROCESSED_DATA)",
        )[0]
        == counts
    )
    assert len(list((project / "data" / "06_models" / "segmentation_model.joblib").iterdir())) == 2
    # and the morning job with nothing new: nobody moves, the activation feed sends nothing
    run_pipeline(project, "daily")
    assert warehouse_rows(project, segments_sql) == warehouse_rows(trained_project, segments_sql)
    assert warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.SEGMENT_CHANGES") == [(0,)]


def test_prediction_without_model_says_how_to_train(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    run_pipeline(project, "ingestion")
    run_pipeline(project, "rfm_features")
    with pytest.raises(Exception) as excinfo:
        run_pipeline(project, "prediction")
    message = str(excinfo.value)
    assert "No trained segmentation model" in message
    assert "kedro run --pipelines training" in message


def test_unknown_pipeline_lists_the_known_ones(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    with pytest.raises(Exception) as excinfo:
        run_pipeline(project, "nope")
    # Kedro raises "Failed to find the pipeline named 'nope'" from the registry's KeyError, and
    # prints both (the CLI shows the cause above its own message).
    messages = [str(excinfo.value), str(excinfo.value.__cause__)]
    assert "Failed to find the pipeline named 'nope'" in messages[0]
    assert (
        "Unknown pipeline 'nope'. Available pipelines: check_source, customer_value, daily, export_segments, ingestion, load_events, model_refresh, monitoring, prediction"
        in messages[1]
    )
