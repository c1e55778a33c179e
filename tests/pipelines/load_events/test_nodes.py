"""load_events nodes: pure hand-over to the file-load dataset (no warehouse), and the report node."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from customer_segmentation.datasets import EventFileLoad
from customer_segmentation.demo.params import DEFAULT_DERIVED_TABLES, DemoDataParams
from customer_segmentation.pipelines.load_events.nodes import (
    prepare_event_load,
    read_events_file,
    report_event_load,
)
from customer_segmentation.pipelines.load_events.params import LoadEventsParams
from tests.datasets.test_event_files import _events_file


def test_prepare_event_load_carries_rows_identity_run_and_demo_tables(tmp_path: Path) -> None:
    events, info = read_events_file(str(_events_file(tmp_path, 4)), LoadEventsParams())
    load = prepare_event_load(
        events, info, {"run_id": "r-1"}, DemoDataParams(derived_tables=["PROCESSED_DATA"])
    )
    assert isinstance(load, EventFileLoad)
    assert load.events is events and load.file_info == info and load.file_info is not info
    assert load.run_id == "r-1" and list(load.demo_derived_tables or []) == ["PROCESSED_DATA"]
    assert len(info["file_sha256"]) == 64 and info["rows_in_file"] == 4 and info["format"] == "csv"
    assert info["source_file"] == str((tmp_path / "events.csv").resolve())
    # no demo parameters: the default table list; no run id: empty text, not 'None'
    bare = prepare_event_load(events, info, {})
    assert bare.run_id == "" and list(bare.demo_derived_tables) == list(DEFAULT_DERIVED_TABLES)


def test_report_node_passes_the_report_on_and_says_what_to_run(caplog: pytest.LogCaptureFixture) -> None:
    report = {
        "status": "loaded",
        "rows_added": 7,
        "source_file": "/data/e.csv",
        "raw_table": "SEGMENTATION.PUBLIC.RAW_DATA",
        "loaded_at": "2026-01-01 00:00:00",
    }
    with caplog.at_level(logging.INFO):
        assert report_event_load(report) == report
    assert "Loaded 7 events from /data/e.csv" in caplog.text and "--pipelines ingestion" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.INFO):
        report_event_load({"status": "already_loaded"})
    assert "Loaded" not in caplog.text
