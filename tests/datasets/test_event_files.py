"""EventFileLoadDataset on an empty embedded warehouse: create, append once, recover an interrupted load."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from kedro.io.core import DatasetError

from customer_segmentation.datasets import EventFileLoad, EventFileLoadDataset, event_files
from customer_segmentation.errors import InvalidIdentifierError, MissingColumnsError
from customer_segmentation.pipelines.load_events.nodes import prepare_event_load, read_events_file
from customer_segmentation.pipelines.load_events.params import LoadEventsParams

PARAMS = LoadEventsParams()
RUN = {"run_id": "test-run"}


def file_loads() -> EventFileLoadDataset:
    """The catalog's raw_event_files entry, on the test warehouse."""
    return EventFileLoadDataset(table_name="RAW_DATA", history_table="LOAD_HISTORY", credentials={})


def load_file(path: Path, run: dict[str, Any] = RUN) -> dict[str, Any]:
    """Read ``path`` as the pipeline does, save it to the dataset, return the dataset's report."""
    dataset = file_loads()
    dataset.save(prepare_event_load(*read_events_file(str(path), PARAMS), run))
    return dataset.load()


def _events_file(tmp_path: Path, n: int = 3, name: str = "events.csv") -> Path:
    path = tmp_path / name
    pd.DataFrame(
        {
            "EVENT_ID": [f"E{i}" for i in range(n)],
            "EVENT_TYPE": ["ORDER_CREATED"] * n,
            "EVENT_TS": ["2026-01-02 10:00:00"] * n,
            "CUSTOMER_ID": [f"C{i}" for i in range(n)],
            "ORDER_ID": [f"O{i}" for i in range(n)],
            "PRODUCT_ID": [""] * n,
            "CATEGORY": ["Vins"] * n,
            "QUANTITY": ["1"] * n,
            "AMOUNT": ["9.90"] * n,
            "CHANNEL": ["web"] * n,
        }
    ).to_csv(path, index=False)
    return path


def test_creates_raw_data_and_stamps_rows(tmp_path: Path, query: Callable[[str], list[Any]]) -> None:
    report = load_file(_events_file(tmp_path))
    assert report["status"] == "loaded" and report["rows_added"] == 3
    rows = query(
        "SELECT EVENT_ID, PRODUCT_ID, LOADED_AT, SOURCE_FILE, SOURCE_ROW FROM RAW_DATA ORDER BY SOURCE_ROW"
    )
    assert [r[0] for r in rows] == ["E0", "E1", "E2"]
    assert all(r[1] is None for r in rows)  # empty cell -> NULL
    assert {str(r[2]) for r in rows} == {report["loaded_at"]}
    assert {r[3] for r in rows} == {str((tmp_path / "events.csv").resolve())}
    assert [r[4] for r in rows] == [1, 2, 3]
    history = query("SELECT FILE_SHA256, STATUS, ROW_COUNT FROM LOAD_HISTORY")
    assert history == [(report["file_sha256"], "loaded", 3)]


def test_same_content_twice_adds_nothing(tmp_path: Path, query: Callable[[str], list[Any]]) -> None:
    path = _events_file(tmp_path)
    load_file(path)
    again = load_file(path)
    copy = tmp_path / "renamed.csv"
    copy.write_bytes(path.read_bytes())
    renamed = load_file(copy)
    assert again["status"] == renamed["status"] == "already_loaded"
    assert again["rows_added"] == renamed["rows_added"] == 0
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 3


def test_load_stamps_increase(tmp_path: Path, query: Callable[[str], list[Any]]) -> None:
    first = load_file(_events_file(tmp_path, 2, "a.csv"))
    query("UPDATE RAW_DATA SET LOADED_AT = '2099-01-01 00:00:00'")  # a stamp ahead of the clock
    second = load_file(_events_file(tmp_path, 3, "b.csv"))
    assert second["loaded_at"] > first["loaded_at"] and second["loaded_at"] == "2099-01-01 00:00:01"


def test_interrupted_after_writing_is_completed_not_doubled(
    tmp_path: Path, query: Callable[[str], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _events_file(tmp_path)
    monkeypatch.setattr(
        EventFileLoadDataset, "mark_loaded", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash"))
    )
    with pytest.raises(DatasetError, match="crash"):  # Kedro wraps save errors
        load_file(path)
    assert query("SELECT STATUS FROM LOAD_HISTORY") == [("loading",)]
    monkeypatch.undo()
    report = load_file(path)
    assert report["status"] == "recovered" and report["rows_added"] == 0
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 3
    assert query("SELECT STATUS FROM LOAD_HISTORY") == [("loaded",)]


def test_interrupted_before_writing_loads_again(
    tmp_path: Path, query: Callable[[str], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _events_file(tmp_path)
    monkeypatch.setattr(
        event_files, "append_pandas", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("crash"))
    )
    with pytest.raises(DatasetError, match="crash"):  # Kedro wraps save errors
        load_file(path)
    monkeypatch.undo()
    report = load_file(path)
    assert report["status"] == "loaded" and report["rows_added"] == 3
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 3
    assert query("SELECT STATUS, COUNT(*) FROM LOAD_HISTORY GROUP BY STATUS") == [("loaded", 1)]


def test_partial_rows_of_an_interrupted_load_are_replaced(
    tmp_path: Path, query: Callable[[str], list[Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _events_file(tmp_path)
    original = event_files.append_pandas

    def write_two_then_crash(session: Any, table: str, frame: pd.DataFrame, *where: Any) -> None:
        original(session, table, frame.head(2), *where)
        raise RuntimeError("crash")

    monkeypatch.setattr(event_files, "append_pandas", write_two_then_crash)
    with pytest.raises(DatasetError, match="crash"):  # Kedro wraps save errors
        load_file(path)
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 2
    monkeypatch.undo()
    report = load_file(path)
    assert report["status"] == "loaded" and report["rows_added"] == 3
    rows = query("SELECT EVENT_ID, COUNT(*) FROM RAW_DATA GROUP BY EVENT_ID ORDER BY EVENT_ID")
    assert rows == [("E0", 1), ("E1", 1), ("E2", 1)]


def test_raw_data_without_load_columns_is_named(tmp_path: Path, query: Callable[[str], list[Any]]) -> None:
    query(
        "CREATE TABLE RAW_DATA (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS VARCHAR, CUSTOMER_ID VARCHAR, "
        "ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY VARCHAR, AMOUNT VARCHAR, CHANNEL VARCHAR)"
    )
    with pytest.raises(DatasetError) as excinfo:
        load_file(_events_file(tmp_path))
    assert isinstance(excinfo.value.__cause__, MissingColumnsError)
    assert "LOADED_AT, SOURCE_FILE, SOURCE_ROW" in str(excinfo.value)
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 0


def test_empty_file_adds_nothing(tmp_path: Path, query: Callable[[str], list[Any]]) -> None:
    report = load_file(_events_file(tmp_path, 0))
    assert report["status"] == "empty" and report["rows_added"] == 0
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 0


def test_report_before_any_save_and_wrong_data_are_refused(warehouse_session: Any) -> None:
    dataset = file_loads()
    with pytest.raises(DatasetError, match="No file has been loaded"):
        dataset.load()
    with pytest.raises(DatasetError, match="saves an EventFileLoad"):
        dataset.save(pd.DataFrame({"EVENT_ID": ["E1"]}))  # type: ignore[arg-type]
    with pytest.raises(DatasetError, match="file_sha256"):
        dataset.save(EventFileLoad(pd.DataFrame(), {"source_file": "/x.csv", "format": "csv"}))


def test_bad_history_table_name_is_refused_before_any_sql() -> None:
    with pytest.raises(InvalidIdentifierError, match="history_table"):
        EventFileLoadDataset(table_name="RAW_DATA", history_table="LOAD HISTORY; DROP TABLE RAW_DATA")


def test_first_load_purges_the_demo_then_a_second_file_keeps_everything(
    tmp_path: Path, query: Callable[[str], list[Any]]
) -> None:
    query(
        "CREATE TABLE RAW_DATA (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR, EVENT_TS VARCHAR, CUSTOMER_ID VARCHAR, "
        "ORDER_ID VARCHAR, PRODUCT_ID VARCHAR, CATEGORY VARCHAR, QUANTITY VARCHAR, AMOUNT VARCHAR, CHANNEL VARCHAR, "
        "LOADED_AT TIMESTAMP_NTZ, SOURCE_FILE VARCHAR, SOURCE_ROW NUMBER(38,0))"
    )
    query("INSERT INTO RAW_DATA (EVENT_ID, SOURCE_FILE) VALUES ('D1', 'demo://x'), ('D2', 'demo://x')")
    query("CREATE TABLE PROCESSED_DATA (CUSTOMER_ID VARCHAR)")
    load_file(_events_file(tmp_path, 0, "empty.csv"))  # an empty file writes nothing and purges nothing
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 2
    report = load_file(_events_file(tmp_path, 3))
    assert report["status"] == "loaded"
    assert query("SELECT COUNT(*), COUNT_IF(SOURCE_FILE LIKE 'demo://%') FROM RAW_DATA") == [(3, 0)]
    assert not query("SELECT * FROM INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME = 'PROCESSED_DATA'")
    load_file(_events_file(tmp_path, 4, "more.csv"))
    assert query("SELECT COUNT(*) FROM RAW_DATA")[0][0] == 3 + 4
