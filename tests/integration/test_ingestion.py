"""Nothing lost, nothing duplicated: incremental ingestion, quarantine, reconciliation, error paths.

Each test runs real pipelines through KedroSession on its own project copy and embedded warehouse,
then reads the warehouse files directly.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml

from customer_segmentation.pipelines.ingestion import pipeline as ingestion_pipeline
from tests.conftest import PROJECT_ROOT, make_project_copy, run_pipeline, stop_server_of, warehouse_rows

pytestmark = pytest.mark.integration

#: A small demo (about 6,700 events) keeps each run to a few seconds.
N_CUSTOMERS = 400


def run(project: Path, pipeline: str | None = None, **params: Any) -> Any:
    """`kedro run [--pipeline p] --params=...` on the project copy (dotted keys as on the command line)."""
    return run_pipeline(project, pipeline, {"demo_data.n_customers": N_CUSTOMERS, **params})


def rows(project: Path, sql: str) -> list[tuple]:
    """Query the project's embedded warehouse files directly (after the run released them)."""
    return warehouse_rows(project, sql)


def scalar(project: Path, sql: str) -> Any:
    return rows(project, sql)[0][0]


def reports(project: Path, name: str) -> list[dict[str, Any]]:
    """Every saved version of a JSON report, oldest first."""
    folder = project / "data" / "08_reporting" / f"{name}.json"
    return [json.loads(p.read_text()) for p in sorted(folder.glob(f"*/{name}.json"))]


def event(event_id: str, **changes: Any) -> dict[str, Any]:
    base = {
        "EVENT_ID": event_id,
        "EVENT_TYPE": "ORDER_CREATED",
        "EVENT_TS": "2025-03-01 12:00:00",  # old: a late event when loaded now
        "CUSTOMER_ID": "C-LATE-0001",
        "ORDER_ID": f"O-{event_id}",
        "PRODUCT_ID": "P-1",
        "CATEGORY": "Vins rouges",
        "QUANTITY": "1",
        "AMOUNT": "25.00",
        "CHANNEL": "web",
    }
    return {**base, **changes}


def write_events(path: Path, events: list[dict[str, Any]]) -> Path:
    frame = pd.DataFrame(events)
    if path.suffix == ".csv":
        frame.to_csv(path, index=False)
    elif path.suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path, index=False)
    return path


def assert_each_raw_event_in_exactly_one_table(project: Path) -> None:
    """RAW_DATA = TRANSFORMED_DATA + REJECTED_EVENTS, row for row, and accepted EVENT_IDs are unique."""
    key = "CAST(LOADED_AT AS VARCHAR) || '|' || SOURCE_FILE || '|' || CAST(SOURCE_ROW AS VARCHAR)"
    raw = rows(project, f"SELECT {key} FROM PUBLIC.RAW_DATA")
    accepted = rows(project, f"SELECT {key} FROM PUBLIC.TRANSFORMED_DATA")
    rejected = rows(project, f"SELECT {key} FROM PUBLIC.REJECTED_EVENTS")
    assert len(raw) == len(set(raw)) == len(accepted) + len(rejected)
    assert set(raw) == set(accepted) | set(rejected)
    assert not set(accepted) & set(rejected)
    assert scalar(project, "SELECT COUNT(*) - COUNT(DISTINCT EVENT_ID) FROM PUBLIC.TRANSFORMED_DATA") == 0
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.REJECTED_EVENTS WHERE REJECT_REASON IS NULL") == 0


def table_snapshot(project: Path) -> dict[str, set]:
    return {
        "accepted": set(rows(project, "SELECT RECORD_ID, EVENT_ID FROM PUBLIC.TRANSFORMED_DATA")),
        "rejected": set(rows(project, "SELECT RECORD_ID, REJECT_REASON FROM PUBLIC.REJECTED_EVENTS")),
    }


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Demo events seeded and ingested once (read-only for the tests that use it)."""
    project = make_project_copy(tmp_path_factory.mktemp("ingested") / "project")
    run(project, "ingestion")
    yield project
    stop_server_of(project)


def load_history(project: Path, folder: Path) -> int:
    """A user's own history, loaded and ingested: the demo generator's events written to a file.

    Loaded with load_events like any user file (SOURCE_FILE is the file's path, not demo://), so
    the demo seed never touches it and later loads add to it; returns the number of events.
    """
    from customer_segmentation.demo.generator import generate_events

    frame = generate_events(n_customers=N_CUSTOMERS).drop(columns=["LOADED_AT", "SOURCE_FILE", "SOURCE_ROW"])
    path = write_events(folder / "history.parquet", frame.to_dict(orient="records"))
    run(project, "load_events", events_file=str(path))
    run(project, "ingestion")
    return len(frame)


def expected_demo_rejections() -> dict[int, str]:
    """SOURCE_ROW -> reason for every defect the demo generator injects (same parameters as the run)."""
    from customer_segmentation.demo.generator import DEFECT_KINDS, generate_events

    demo = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters.yml").read_text())["demo_data"]
    args = {k: demo[k] for k in ("end_date", "history_days", "defect_rate", "seed")}
    frame = generate_events(n_customers=N_CUSTOMERS, **args)
    expected: dict[int, str] = {}
    detectors = {
        "missing_customer": frame["CUSTOMER_ID"].isna(),
        "negative_amount": frame["AMOUNT"].fillna("").str.startswith("-"),
        "bad_amount": frame["AMOUNT"] == "12,50 EUR",  # the non_numeric_amount defect
        "bad_timestamp": frame["EVENT_TS"] == "31/02/2025 25:61",
        "future_timestamp": frame["EVENT_TS"].str.startswith("2099"),
        "unknown_event_type": frame["EVENT_TYPE"] == "ORDER_TELEPORTED",
        "duplicate_event": frame.duplicated("EVENT_ID", keep="first"),
    }
    for reason, mask in detectors.items():
        for source_row in frame.loc[mask, "SOURCE_ROW"]:
            assert int(source_row) not in expected, "one defect per row"
            expected[int(source_row)] = reason
    assert len(DEFECT_KINDS) == len(detectors)  # a new defect kind needs a detector here
    return expected


# ------------------------------------------------------------------------------------------- quarantine


def test_every_demo_defect_is_rejected_with_its_reason(ingested: Path) -> None:
    expected = expected_demo_rejections()
    assert set(expected.values()) == {
        "missing_customer",
        "negative_amount",
        "bad_amount",
        "bad_timestamp",
        "future_timestamp",
        "unknown_event_type",
        "duplicate_event",
    }
    got = dict(rows(ingested, "SELECT SOURCE_ROW, REJECT_REASON FROM PUBLIC.REJECTED_EVENTS"))
    assert got == expected
    assert_each_raw_event_in_exactly_one_table(ingested)


def test_reconciliation_is_logged_and_reported(ingested: Path) -> None:
    (report,) = reports(ingested, "ingestion_report")
    raw = scalar(ingested, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA")
    assert report["raw"] == raw == report["accepted"] + report["rejected"]
    assert report["accepted"] == scalar(ingested, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA")
    assert report["rejected_by_reason"] == dict(
        sorted(rows(ingested, "SELECT REJECT_REASON, COUNT(*) FROM PUBLIC.REJECTED_EVENTS GROUP BY 1"))
    )
    assert report["batch_check"] == {
        "events": raw,
        "in_transformed_data": report["accepted"],
        "in_rejected_events": report["rejected"],
        "in_both": 0,
        "in_neither": 0,
    }
    assert report["warehouse_totals"]["reconciled"] is True
    state = rows(ingested, "SELECT RAW_EVENTS, ACCEPTED_EVENTS, REJECTED_EVENTS FROM PUBLIC.INGESTION_STATE")
    assert state == [(report["raw"], report["accepted"], report["rejected"])]


# ----------------------------------------------------------------------------- incremental and idempotent


@pytest.mark.slow
def test_incremental_late_overlapping_and_repeated_files(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    history_raw = load_history(project, tmp_path)
    history_stamp = str(scalar(project, "SELECT MAX(LOADED_AT) FROM PUBLIC.RAW_DATA"))
    first = table_snapshot(project)

    # 1. a file of late events (EVENT_TS in 2025, loaded now): only these are processed, all accepted
    late = write_events(tmp_path / "late.csv", [event(f"L-{i:03d}") for i in range(20)])
    run(project, "load_events", events_file=str(late))
    run(project, "ingestion")
    report = reports(project, "ingestion_report")[-1]
    assert (report["raw"], report["accepted"], report["rejected"]) == (20, 20, 0)
    assert report["watermark_from"] == history_stamp  # the history's load stamp
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA WHERE EVENT_ID LIKE 'L-%'") == 20
    assert table_snapshot(project)["accepted"] >= first["accepted"]  # earlier rows untouched

    # 2. an overlapping export: 10 events already accepted (same content) + 10 new ones
    overlap = write_events(tmp_path / "overlap.jsonl", [event(f"L-{i:03d}") for i in range(10, 30)])
    run(project, "load_events", events_file=str(overlap))
    run(project, "ingestion", **{"ingestion.max_rejection_rate": 0.6})
    report = reports(project, "ingestion_report")[-1]
    assert (report["raw"], report["accepted"], report["rejected"]) == (20, 10, 10)
    assert report["rejected_by_reason"] == {"duplicate_event": 10}
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA WHERE EVENT_ID LIKE 'L-%'") == 30
    accepted_from = dict(
        rows(project, "SELECT EVENT_ID, SOURCE_FILE FROM PUBLIC.TRANSFORMED_DATA WHERE EVENT_ID LIKE 'L-01%'")
    )
    assert set(accepted_from.values()) == {str(late.resolve())}  # the first load of an event wins

    # 3. the same file again (and the same content under another name): nothing added, nothing processed
    copy = tmp_path / "late-again.csv"
    copy.write_bytes(late.read_bytes())
    run(project, "load_events", events_file=str(late))
    run(project, "load_events", events_file=str(copy))
    assert [r["status"] for r in reports(project, "load_events_report")[-2:]] == ["already_loaded"] * 2
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.RAW_DATA") == history_raw + 40
    before = table_snapshot(project)
    run(project, "ingestion")
    assert reports(project, "ingestion_report")[-1]["raw"] == 0
    assert table_snapshot(project) == before
    assert_each_raw_event_in_exactly_one_table(project)
    assert len(rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE")) == 4  # history, late, overlap, nothing

    # 4. full rebuild: same rows, same records, same reasons
    run(project, "ingestion", **{"ingestion.full_refresh": True})
    report = reports(project, "ingestion_report")[-1]
    assert report["full_refresh"] is True and report["raw"] == history_raw + 40
    assert table_snapshot(project) == before
    assert_each_raw_event_in_exactly_one_table(project)


def test_overlapping_files_in_one_batch(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    first = write_events(tmp_path / "x.csv", [event(f"X-{i:02d}") for i in range(10)])
    second = write_events(tmp_path / "y.parquet", [event(f"X-{i:02d}") for i in range(5, 15)])
    run(project, "load_events", events_file=str(first), **{"demo_data.enabled": False})
    run(project, "load_events", events_file=str(second), **{"demo_data.enabled": False})
    run(project, "ingestion", **{"demo_data.enabled": False, "ingestion.max_rejection_rate": 0.5})
    report = reports(project, "ingestion_report")[-1]
    assert (report["raw"], report["accepted"], report["rejected"]) == (20, 15, 5)
    assert rows(project, "SELECT COUNT(*), COUNT(DISTINCT EVENT_ID) FROM PUBLIC.TRANSFORMED_DATA") == [
        (15, 15)
    ]
    duplicates = rows(project, "SELECT DISTINCT SOURCE_FILE, REJECT_REASON FROM PUBLIC.REJECTED_EVENTS")
    assert duplicates == [(str(second.resolve()), "duplicate_event")]  # the file loaded first wins
    assert_each_raw_event_in_exactly_one_table(project)


@pytest.mark.slow
def test_fault_between_merge_and_watermark_then_rerun(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = make_project_copy(tmp_path / "p")
    load_history(project, tmp_path)
    batch = write_events(
        tmp_path / "batch.parquet",
        [event(f"F-{i:03d}") for i in range(30)] + [event("F-000", AMOUNT="13.00")],  # one in-batch duplicate
    )
    run(project, "load_events", events_file=str(batch))
    state_before = rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE")

    def crash(*args: Any) -> Any:
        raise RuntimeError("injected fault after the merges")

    monkeypatch.setattr(ingestion_pipeline, "advance_watermark", crash)
    with pytest.raises(RuntimeError, match="injected fault"):
        run(project, "ingestion")
    monkeypatch.undo()
    # the merges happened, the watermark did not move
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA WHERE EVENT_ID LIKE 'F-%'") == 30
    assert rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE") == state_before
    after_fault = table_snapshot(project)

    run(project, "ingestion")  # the same batch again
    report = reports(project, "ingestion_report")[-1]
    assert (report["raw"], report["accepted"], report["rejected"]) == (31, 30, 1)
    assert report["batch_check"]["in_both"] == report["batch_check"]["in_neither"] == 0
    assert table_snapshot(project) == after_fault  # nothing doubled, nothing lost
    assert len(rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE")) == len(state_before) + 1
    assert_each_raw_event_in_exactly_one_table(project)
    run(project, "ingestion")
    assert reports(project, "ingestion_report")[-1]["raw"] == 0


def test_rejection_rate_above_threshold_fails_and_writes_nothing(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    load_history(project, tmp_path)
    bad = [event(f"B-{i:03d}", AMOUNT="n/a") for i in range(6)] + [event(f"G-{i:03d}") for i in range(4)]
    run(project, "load_events", events_file=str(write_events(tmp_path / "bad.csv", bad)))
    before = table_snapshot(project)
    state = rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE")
    n_reports = len(reports(project, "ingestion_report"))
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion")
    message = str(excinfo.value)
    assert "6 of 10 raw events (60.00%) were rejected" in message
    assert "ingestion.max_rejection_rate" in message and "Nothing was written" in message
    assert "'bad_amount': 6" in message
    assert table_snapshot(project) == before
    assert rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE") == state
    assert len(reports(project, "ingestion_report")) == n_reports

    run(project, "ingestion", **{"ingestion.max_rejection_rate": 0.7})  # accepted knowingly
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.REJECTED_EVENTS WHERE EVENT_ID LIKE 'B-%'") == 6
    assert_each_raw_event_in_exactly_one_table(project)


# ------------------------------------------------------------------------------------------- error paths


def test_missing_raw_table_is_named(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion", **{"demo_data.enabled": False})
    message = str(excinfo.value)
    assert "SEGMENTATION.PUBLIC.RAW_DATA does not exist" in message
    assert "kedro run --pipelines load_events --params=events_file=<path>" in message


def test_raw_table_missing_a_column_is_named(tmp_path: Path) -> None:
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    project = make_project_copy(tmp_path / "p")
    warehouse.configure(WarehouseSettings.from_credentials({}, project / "data" / "warehouse"))
    try:
        warehouse.get_session().sql(
            "CREATE TABLE RAW_DATA (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS VARCHAR, CUSTOMER_ID VARCHAR, "
            "ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY VARCHAR, CHANNEL VARCHAR)"
        ).collect()
    finally:
        warehouse.close()
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion", **{"demo_data.enabled": False})
    assert "RAW_DATA lacks required column(s) AMOUNT" in str(excinfo.value)


def test_invalid_ingestion_parameter_fails_before_reading(tmp_path: Path) -> None:
    project = make_project_copy(tmp_path / "p")
    with pytest.raises(Exception) as excinfo:
        run(project, "ingestion", **{"ingestion.max_rejection_rate": 5})
    assert "ingestion.max_rejection_rate: Input should be less than or equal to 1 (got 5)" in str(
        excinfo.value
    )
    assert not (project / "data" / "warehouse" / "SEGMENTATION.db").exists() or not rows(
        project, "SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'TRANSFORMED_DATA'"
    )


def test_invalid_training_k_range_through_a_run(ingested: Path, tmp_path: Path) -> None:
    import shutil

    project = tmp_path / "p"
    shutil.copytree(ingested, project)  # leave the shared project as it was
    run(project, "rfm_features")
    with pytest.raises(Exception) as excinfo:
        run(project, "training", **{"training.k_min": 6, "training.k_max": 3})
    message = str(excinfo.value)
    assert "2 <= k_min <= k_max" in message and "k_min=6, k_max=3" in message
    assert not (project / "data" / "06_models" / "segmentation_model.joblib").exists()
