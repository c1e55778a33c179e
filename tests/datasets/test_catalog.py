"""The catalog's choice of table kinds: what BI reads keeps history and grants, scratch does not."""

from __future__ import annotations

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
    assert kinds["classified_batch"] == ("temporary", False)  # per-run scratch, never shared by runs


def test_every_overwritten_table_keeps_its_grants() -> None:
    for name, ds in _datasets().items():
        if ds._mode in ("overwrite", "merge") and ds._table_type != "temporary":
            assert ds._copy_grants, f"{name} would drop its grants on every run"
