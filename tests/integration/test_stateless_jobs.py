"""Only the warehouse persists between jobs: fresh containers train, score and run daily; rollback by parameter."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from tests.conftest import copy_project, make_project_copy, run_pipeline, warehouse_rows

pytestmark = pytest.mark.integration

SCORES = "SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL, DISTANCE_TO_CENTROID, MODEL_VERSION FROM PUBLIC.PROCESSED_DATA ORDER BY CUSTOMER_ID"


def fresh_container(project: Path) -> None:
    """What a new container has: the image's empty data folders, and the kept warehouse."""
    for layer in (project / "data").iterdir():
        if layer.name != "warehouse":
            shutil.rmtree(layer)
            layer.mkdir()


@pytest.mark.slow
def test_train_then_prediction_then_daily_share_only_the_warehouse(
    trained_template: Path, tmp_path: Path
) -> None:
    project = copy_project(trained_template, tmp_path / "p")  # the demo after one full `kedro run`
    version = warehouse_rows(project, "SELECT VERSION FROM PUBLIC.SEGMENTATION_MODELS")
    assert len(version) == 1
    trained = warehouse_rows(project, SCORES)
    first_run = warehouse_rows(project, "SELECT DISTINCT RUN_ID FROM PUBLIC.PROCESSED_DATA")

    fresh_container(project)
    assert not list((project / "data" / "06_models").iterdir())
    run_pipeline(project, "prediction")
    run_pipeline(project, "store_results")
    assert warehouse_rows(project, SCORES) == trained  # same model, read from the warehouse
    assert warehouse_rows(project, "SELECT DISTINCT RUN_ID FROM PUBLIC.PROCESSED_DATA") != first_run

    fresh_container(project)
    run_pipeline(project, "daily")
    daily = warehouse_rows(project, SCORES)
    # every customer scored again with the stored model (features are recomputed, so distances
    # may move slightly; the customers and the model version may not)
    assert [r[0] for r in daily] == [r[0] for r in trained]
    customers = warehouse_rows(
        project, "SELECT COUNT(*), COUNT(DISTINCT CUSTOMER_ID) FROM PUBLIC.PROCESSED_DATA"
    )[0]
    assert customers[0] == customers[1] == len(trained)
    assert warehouse_rows(project, "SELECT DISTINCT MODEL_VERSION FROM PUBLIC.PROCESSED_DATA") == version
    # one SEGMENT_SUMMARY row set per scoring run (full run, prediction, daily), each for the model
    runs = warehouse_rows(
        project, "SELECT RUN_ID, COUNT(*), MIN(MODEL_VERSION) FROM PUBLIC.SEGMENT_SUMMARY GROUP BY RUN_ID"
    )
    assert len(runs) == 3 and {r[2] for r in runs} == {version[0][0]}
    k = warehouse_rows(project, "SELECT K FROM PUBLIC.SEGMENTATION_MODELS")[0][0]
    assert {r[1] for r in runs} <= set(range(1, k + 1))
    assert warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.MODEL_SEGMENTS")[0][0] == k

    # a retrain in a fresh container matches its segments to the stored model (no model file)
    fresh_container(project)
    run_pipeline(project, "training", {"training.random_state": 12})
    newest = warehouse_rows(
        project,
        "SELECT METRICS, EXTRA FROM PUBLIC.SEGMENTATION_MODELS ORDER BY TRAINED_AT DESC, REGISTERED_AT DESC LIMIT 1",
    )[0]
    identity = json.loads(newest[0])["identity"]
    assert identity["previous_version"] == version[0][0] and identity["matched"]
    assert identity["same_segment_share"] >= 0.95
    assert {m["segment_id"] for m in identity["matched"]} <= set(json.loads(newest[1])["segment_ids"])


@pytest.mark.slow
def test_rollback_by_parameter_scores_with_the_older_version(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    run_pipeline(project, params={"training.k": 3})
    older_scores = warehouse_rows(project, SCORES)
    older = warehouse_rows(project, "SELECT VERSION FROM PUBLIC.SEGMENTATION_MODELS")[0][0]
    run_pipeline(project, "training", params={"training.k": 5})
    versions = warehouse_rows(
        project, "SELECT VERSION, K FROM PUBLIC.SEGMENTATION_MODELS ORDER BY TRAINED_AT, REGISTERED_AT"
    )
    assert [v[1] for v in versions] == [3, 5]
    newer = versions[1][0]

    fresh_container(project)
    run_pipeline(project, "prediction")
    run_pipeline(project, "store_results")
    assert {r[4] for r in warehouse_rows(project, SCORES)} == {newer}  # the newest by default

    fresh_container(project)
    run_pipeline(project, "prediction", params={"prediction.model_version": older})
    run_pipeline(project, "store_results")
    assert warehouse_rows(project, SCORES) == older_scores  # rolled back: the older version's scores

    with pytest.raises(Exception) as excinfo:
        run_pipeline(project, "prediction", params={"prediction.model_version": "no-such-version"})
    message = str(excinfo.value)
    assert "no-such-version" in message and older in message and newer in message
