"""Segments over time on the demo: simulated days, daily runs, history, feed, identity, drift, export."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.conftest import copy_project, make_project_copy, stop_server_of, warehouse_rows
from tests.conftest import run_pipeline as run_in_project
from tests.integration.test_ingestion import event, write_events

pytestmark = pytest.mark.integration

MONITORING_TABLES = (
    "SEGMENT_HISTORY",
    "SEGMENT_MIGRATIONS",
    "SEGMENT_FLOWS",
    "SEGMENT_CHANGES",
    "SEGMENT_PUBLISHED",
    "SEGMENT_PROFILES",
)


def segments(project: Path) -> dict[str, tuple[int, str]]:
    """(SEGMENT_ID, SEGMENT_LABEL) of every customer in PROCESSED_DATA."""
    return {
        r[0]: (r[1], r[2])
        for r in warehouse_rows(
            project, "SELECT CUSTOMER_ID, SEGMENT_ID, SEGMENT_LABEL FROM PUBLIC.PROCESSED_DATA"
        )
    }


def same_segment_share(before: dict, after: dict) -> float:
    common = set(before) & set(after)
    assert len(common) > 300
    return sum(before[c] == after[c] for c in common) / len(common)


def counts(project: Path) -> dict[str, int]:
    return {t: warehouse_rows(project, f"SELECT COUNT(*) FROM PUBLIC.{t}")[0][0] for t in MONITORING_TABLES}


def run_pipeline(project: Path, *args: Any, **kwargs: Any) -> Any:
    """Every run in a fresh container: only the warehouse persists (no model file, no report)."""
    for folder in ("data/06_models", "data/08_reporting"):
        shutil.rmtree(project / folder, ignore_errors=True)
    return run_in_project(project, *args, **kwargs)


def latest_model(project: Path) -> Any:
    """Version and metrics of the newest READY model in SEGMENTATION_MODELS (the one that scores)."""
    version, metrics = warehouse_rows(
        project,
        "SELECT VERSION, METRICS FROM PUBLIC.SEGMENTATION_MODELS WHERE STATUS = 'READY' "
        "ORDER BY TRAINED_AT DESC, REGISTERED_AT DESC, VERSION DESC LIMIT 1",
    )[0]
    return SimpleNamespace(version=version, metrics=json.loads(metrics))


def rescore(project: Path) -> None:
    run_pipeline(project, "prediction")
    run_pipeline(project, "store_results")


@pytest.fixture(scope="module")
def lifecycle(trained_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """kedro run, simulate 30, daily, simulate 30, daily (with two retrains measured on the way)."""
    # snapshot 1: the demo after one full `kedro run` (built once for the test run)
    project = copy_project(trained_template, tmp_path_factory.mktemp("monitoring") / "project")
    facts: dict[str, Any] = {"project": project}
    first = segments(project)
    # retraining on unchanged data with another random_state (scored, not monitored)
    run_pipeline(project, "training", {"training.random_state": 12})
    rescore(project)
    facts["same_data_other_seed"] = same_segment_share(first, segments(project))

    run_pipeline(project, "simulate_days", {"simulate_days.days": 30})
    run_pipeline(project, "daily")  # snapshot 2, scored with the active model
    old_model = segments(project)
    # a retrain after 30 simulated days, compared on the same customers and features
    run_pipeline(project, "training")
    rescore(project)
    facts["after_30_days"] = same_segment_share(old_model, segments(project))

    run_pipeline(project, "simulate_days", {"simulate_days.days": 30})
    run_pipeline(project, "daily")  # snapshot 3
    yield facts
    stop_server_of(project)


def test_three_snapshots_without_duplicates(lifecycle: dict[str, Any]) -> None:
    project = lifecycle["project"]
    snapshots = warehouse_rows(
        project,
        "SELECT SNAPSHOT_DATE, COUNT(*), COUNT(DISTINCT CUSTOMER_ID) FROM PUBLIC.SEGMENT_HISTORY GROUP BY 1 ORDER BY 1",
    )
    assert len(snapshots) == 3
    assert all(n == distinct for _, n, distinct in snapshots)
    assert snapshots[0][1] < snapshots[1][1] < snapshots[2][1]  # newcomers arrived
    assert (snapshots[2][0] - snapshots[1][0]).days == 30
    latest = warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.PROCESSED_DATA")[0][0]
    assert snapshots[2][1] == latest


def test_migrations_add_up(lifecycle: dict[str, Any]) -> None:
    project = lifecycle["project"]
    dates = [
        r[0]
        for r in warehouse_rows(
            project, "SELECT DISTINCT SNAPSHOT_DATE FROM PUBLIC.SEGMENT_HISTORY ORDER BY 1"
        )
    ]
    for previous, current in zip(dates, dates[1:]):
        ids = {
            d: {
                r[0]
                for r in warehouse_rows(
                    project, f"SELECT CUSTOMER_ID FROM PUBLIC.SEGMENT_HISTORY WHERE SNAPSHOT_DATE = '{d}'"
                )
            }
            for d in (previous, current)
        }
        both, new = len(ids[previous] & ids[current]), len(ids[current] - ids[previous])
        moved = warehouse_rows(
            project,
            f"SELECT SUM(CUSTOMERS), SUM(CASE WHEN FROM_SEGMENT = 'new' THEN CUSTOMERS ELSE 0 END), "
            f"MIN(PREVIOUS_SNAPSHOT_DATE) FROM PUBLIC.SEGMENT_MIGRATIONS WHERE SNAPSHOT_DATE = '{current}' AND TO_SEGMENT <> 'gone'",
        )[0]
        assert moved == (both + new, new, previous)
        assert new > 0
    flows = warehouse_rows(
        project,
        f"SELECT SUM(CUSTOMERS_AFTER), SUM(CUSTOMERS_BEFORE + ENTERED - EXITED) FROM PUBLIC.SEGMENT_FLOWS WHERE SNAPSHOT_DATE = '{dates[-1]}'",
    )[0]
    assert flows[0] == flows[1] == len(ids[dates[-1]])


def test_activation_feed_is_the_label_changes(lifecycle: dict[str, Any]) -> None:
    """Each daily published the customers whose label differs from the snapshot before, once."""
    project = lifecycle["project"]
    dates = [
        r[0]
        for r in warehouse_rows(
            project, "SELECT DISTINCT SNAPSHOT_DATE FROM PUBLIC.SEGMENT_HISTORY ORDER BY 1"
        )
    ]
    feed = warehouse_rows(
        project,
        "SELECT CUSTOMER_ID, SNAPSHOT_DATE, PREVIOUS_SNAPSHOT_DATE, FROM_SEGMENT, TO_SEGMENT, MODEL_VERSION, "
        "CHANGE_ID FROM PUBLIC.SEGMENT_CHANGES",
    )
    assert len({r[6] for r in feed}) == len(feed)  # one stable id per row
    for previous, current in zip(dates, dates[1:]):
        expected = {
            r[0]
            for r in warehouse_rows(
                project,
                f"SELECT c.CUSTOMER_ID FROM PUBLIC.SEGMENT_HISTORY c JOIN PUBLIC.SEGMENT_HISTORY p "
                f"ON c.CUSTOMER_ID = p.CUSTOMER_ID WHERE c.SNAPSHOT_DATE = '{current}' AND p.SNAPSHOT_DATE = '{previous}' "
                f"AND c.SEGMENT_LABEL <> p.SEGMENT_LABEL",
            )
        }
        rows = [r for r in feed if r[1] == current]
        assert expected and {r[0] for r in rows} == expected and len(rows) == len(expected)
        assert all(r[3] != r[4] for r in rows)
    latest = [r for r in feed if r[1] == dates[-1]]
    assert {r[5] for r in latest} == {
        r[0] for r in warehouse_rows(project, "SELECT DISTINCT MODEL_VERSION FROM PUBLIC.PROCESSED_DATA")
    }
    # the published state is the latest snapshot (every customer, the label last sent)
    assert warehouse_rows(
        project,
        f"SELECT COUNT(*) FROM PUBLIC.SEGMENT_PUBLISHED s JOIN PUBLIC.SEGMENT_HISTORY h ON h.CUSTOMER_ID = s.CUSTOMER_ID "
        f"AND h.SNAPSHOT_DATE = '{dates[-1]}' AND h.SEGMENT_LABEL = s.SEGMENT_LABEL",
    ) == warehouse_rows(
        project, f"SELECT COUNT(*) FROM PUBLIC.SEGMENT_HISTORY WHERE SNAPSHOT_DATE = '{dates[-1]}'"
    )


def test_identity_targets(lifecycle: dict[str, Any]) -> None:
    assert lifecycle["same_data_other_seed"] >= 0.95
    assert lifecycle["after_30_days"] >= 0.90


def test_profiles_and_normal_drift(lifecycle: dict[str, Any]) -> None:
    project = lifecycle["project"]
    profiles = warehouse_rows(
        project,
        "SELECT SEGMENT_ID, CUSTOMERS, MEDIAN_RECENCY_DAYS, TOP_FEATURE_1, DESCRIPTION, SUGGESTED_ACTION FROM PUBLIC.SEGMENT_PROFILES",
    )
    by_segment = dict(
        warehouse_rows(project, "SELECT SEGMENT_ID, COUNT(*) FROM PUBLIC.PROCESSED_DATA GROUP BY 1")
    )
    assert {r[0]: r[1] for r in profiles} == by_segment
    assert all(r[3] and r[4] and r[5] for r in profiles)
    drift = warehouse_rows(project, "SELECT STATUS FROM PUBLIC.SEGMENT_DRIFT")
    assert len(drift) == 3  # one row per monitored run
    # ordinary days (same personas, usual arrivals) never call for a retrain
    assert {r[0] for r in drift} <= {"ok", "watch"}


def test_rerunning_daily_changes_no_row_count(lifecycle: dict[str, Any]) -> None:
    project = lifecycle["project"]
    before = counts(project)
    run_pipeline(project, "daily")
    assert counts(project) == before


def test_export_twice_gives_identical_files_and_stays_in_the_project(
    lifecycle: dict[str, Any], tmp_path: Path
) -> None:
    project = lifecycle["project"]
    run_pipeline(project, "export_segments")
    folder = project / "data" / "09_export" / "segments"
    (snapshot,) = [p for p in folder.iterdir() if p.is_dir()]
    first = {p.name: p.read_bytes() for p in sorted(snapshot.glob("*.csv"))}
    run_pipeline(project, "export_segments")
    assert {p.name: p.read_bytes() for p in sorted(snapshot.glob("*.csv"))} == first
    latest = warehouse_rows(project, "SELECT MAX(SNAPSHOT_DATE) FROM PUBLIC.SEGMENT_HISTORY")[0][0]
    assert snapshot.name == latest.isoformat()
    per_segment = dict(
        warehouse_rows(
            project,
            f"SELECT SEGMENT_ID, COUNT(*) FROM PUBLIC.SEGMENT_HISTORY WHERE SNAPSHOT_DATE = '{latest}' GROUP BY 1",
        )
    )
    assert len(first) == len(per_segment)
    for name, payload in first.items():
        lines = payload.decode().splitlines()
        assert lines[0].startswith("CUSTOMER_ID,SEGMENT_ID,SEGMENT_LABEL")
        assert len(lines) - 1 == per_segment[int(name.split("_")[1])]
        assert lines[1:] == sorted(lines[1:])
    with pytest.raises(Exception, match="outside the project"):
        run_pipeline(project, "export_segments", {"export_segments.folder": str(tmp_path / "elsewhere")})
    assert not (tmp_path / "elsewhere").exists()


@pytest.mark.slow
def test_drift_shift_recommends_a_retrain_and_on_drift_retrains(
    trained_template: Path, tmp_path: Path
) -> None:
    project = copy_project(trained_template, tmp_path / "p")  # the demo after one full `kedro run`
    trained = latest_model(project)
    # 60 days in which champions stop buying and an acquisition wave brings five times the newcomers
    run_pipeline(
        project,
        "simulate_days",
        {
            "simulate_days.days": 60,
            "simulate_days.silent_personas": "champion",
            "simulate_days.arrival_multiplier": 5,
        },
    )
    run_pipeline(project, "daily")  # retrain_policy: never
    status = warehouse_rows(
        project,
        "SELECT STATUS, MAX_SHARE_SHIFT, MODEL_VERSION FROM PUBLIC.SEGMENT_DRIFT ORDER BY MEASURED_AT DESC LIMIT 1",
    )[0]
    assert status[0] == "retrain_recommended" and status[1] >= 0.10 and status[2] == trained.version
    assert latest_model(project).version == trained.version  # never: no retrain

    run_pipeline(project, "daily", {"training.retrain_policy": "on_drift"})
    retrained = latest_model(project)
    assert retrained.version != trained.version
    assert "retrain_recommended" in retrained.metrics["retrained_because"]
    assert warehouse_rows(project, "SELECT DISTINCT MODEL_VERSION FROM PUBLIC.PROCESSED_DATA") == [
        (retrained.version,)
    ]
    assert retrained.metrics["identity"]["previous_version"] == trained.version
    assert retrained.metrics["identity"]["matched"]  # segments kept their ids through the retrain
    # the same snapshot, scored again: replaced, not duplicated
    assert warehouse_rows(
        project, "SELECT COUNT(*) = COUNT(DISTINCT SNAPSHOT_DATE || CUSTOMER_ID) FROM PUBLIC.SEGMENT_HISTORY"
    ) == [(True,)]
    # the retrained model fits today's customers: the next morning keeps it
    run_pipeline(project, "daily", {"training.retrain_policy": "on_drift"})
    assert latest_model(project).version == retrained.version
    assert (
        warehouse_rows(project, "SELECT STATUS FROM PUBLIC.SEGMENT_DRIFT ORDER BY MEASURED_AT DESC LIMIT 1")[
            0
        ][0]
        != "retrain_recommended"
    )


def test_simulate_days_refuses_user_data(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    path = write_events(tmp_path / "mine.csv", [event("MINE-1")])
    run_pipeline(project, "load_events", {"events_file": str(path)})
    before = warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA")[0][0]
    with pytest.raises(Exception, match="did not write"):
        run_pipeline(project, "simulate_days", {"simulate_days.days": 3})
    assert warehouse_rows(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA")[0][0] == before
