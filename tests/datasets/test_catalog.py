"""The catalog's choice of table kinds: what BI reads keeps history and grants, scratch does not."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from customer_segmentation.datasets import SnowparkTableDataset

CATALOG = Path(__file__).resolve().parents[2] / "conf" / "base" / "catalog.yml"


def _datasets() -> dict[str, SnowparkTableDataset]:
    entries = yaml.safe_load(CATALOG.read_text())
    return {
        name: SnowparkTableDataset(**{k: v for k, v in entry.items() if k != "type"} | {"credentials": {}})
        for name, entry in entries.items()
        if isinstance(entry, dict) and str(entry.get("type", "")).endswith("SnowparkTableDataset")
    }


def test_table_kinds_and_grants_per_dataset() -> None:
    kinds = {name: (ds._table_type, ds._copy_grants) for name, ds in _datasets().items()}
    assert kinds["processed_data"] == ("permanent", True)  # read by BI: Time Travel, grants kept
    assert kinds["transformed_data"] == kinds["rejected_events"] == ("permanent", True)  # the cleaned history
    assert kinds["customer_features"] == kinds["scored_customers"] == ("transient", True)  # rebuilt every run
    assert (
        kinds["typed_batch"] == kinds["repeated_records"] == ("temporary", False)
    )  # per-run scratch, never shared


def test_every_overwritten_table_keeps_its_grants() -> None:
    for name, ds in _datasets().items():
        if ds._mode in ("overwrite", "merge") and ds._table_type != "temporary":
            assert ds._copy_grants, f"{name} would drop its grants on every run"


def test_each_table_is_named_once_and_save_modes_live_in_the_catalog() -> None:
    """RAW_DATA and LOAD_HISTORY are named by one catalog entry each (YAML anchors), never by parameters."""
    text = CATALOG.read_text()
    for table in ("RAW_DATA", "LOAD_HISTORY"):
        assert len(re.findall(rf"^\s*(table_name|history_table):.*\b{table}\b", text, re.MULTILINE)) == 1, (
            table
        )
    entries = yaml.safe_load(text)
    loads = entries["raw_event_files"]
    assert (
        loads["table_name"]
        == entries["raw_data"]["table_name"]
        == entries["raw_data_before_seed"]["table_name"]
    )
    assert loads["history_table"] == entries["load_history"]["table_name"]
    parameters = yaml.safe_load((CATALOG.parent / "parameters_load_events.yml").read_text())
    assert not {"raw_table", "history_table"} & set(parameters["load_events"])
    # a full refresh may replace exactly the two ingestion tables, which merge otherwise
    rebuildable = {name for name, ds in _datasets().items() if ds._rebuild_marker}
    assert rebuildable == {"transformed_data", "rejected_events"}
    assert all(_datasets()[name]._mode == "merge" for name in rebuildable)
