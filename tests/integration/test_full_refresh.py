"""`ingestion.full_refresh=true` rebuilds TRANSFORMED_DATA and REJECTED_EVENTS (catalog: merge + rebuild_marker).

The catalog's save mode is merge for both tables; a full refresh hands each a complete rebuild
(``datasets.REBUILD_MARKER``) that replaces the content. Checked here on what a merge alone would
get wrong: an event type allowed after the fact moves from rejected to accepted (a merge would leave
it in both tables), and a row removed from RAW_DATA disappears from the derived tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from customer_segmentation.datasets import SnowparkTableDataset
from tests.conftest import make_project_copy
from tests.integration.test_ingestion import (
    assert_each_raw_event_in_exactly_one_table,
    event,
    reports,
    rows,
    run,
    scalar,
    write_events,
)

pytestmark = pytest.mark.integration

OTHER_TYPES = ["PAGE_VIEW", "ADD_TO_CART", "REMOVE_FROM_CART", "WISHLIST_ADD", "NEWSLETTER_SIGNUP"]
NO_DEMO = {"demo_data.enabled": False, "ingestion.max_rejection_rate": 0.5}


def _execute(project: Path, sql: str) -> None:
    """A change made outside the pipelines (on the project's warehouse, between runs)."""
    from customer_segmentation import warehouse
    from customer_segmentation.warehouse.config import WarehouseSettings

    warehouse.configure(WarehouseSettings.from_credentials({}, project / "data" / "warehouse"))
    try:
        warehouse.get_session().sql(sql).collect()
    finally:
        warehouse.close()


def _project(tmp_path: Path) -> Path:
    project = make_project_copy(tmp_path / "p")
    events = [event(f"R-{i:02d}") for i in range(12)] + [
        event(f"G-{i}", EVENT_TYPE="GIFT_CARD_VIEW", ORDER_ID=None, AMOUNT=None, QUANTITY=None)
        for i in range(3)
    ]
    run(project, "load_events", events_file=str(write_events(tmp_path / "e.parquet", events)), **NO_DEMO)
    run(project, "ingestion", **NO_DEMO)
    assert rows(project, "SELECT REJECT_REASON, COUNT(*) FROM PUBLIC.REJECTED_EVENTS GROUP BY 1") == [
        ("unknown_event_type", 3)
    ]
    return project


def _rebuild(project: Path) -> None:
    run(
        project,
        "ingestion",
        **NO_DEMO,
        **{"ingestion.full_refresh": True, "ingestion.other_event_types": [*OTHER_TYPES, "GIFT_CARD_VIEW"]},
    )


def test_full_refresh_replaces_both_tables(tmp_path: Path) -> None:
    project = _project(tmp_path)
    _execute(
        project, "DELETE FROM SEGMENTATION.PUBLIC.RAW_DATA WHERE EVENT_ID = 'R-00'"
    )  # e.g. a user's GDPR erasure
    _rebuild(project)
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.REJECTED_EVENTS") == 0  # emptied, not merged
    accepted = {r[0] for r in rows(project, "SELECT EVENT_ID FROM PUBLIC.TRANSFORMED_DATA")}
    assert accepted == {f"R-{i:02d}" for i in range(1, 12)} | {f"G-{i}" for i in range(3)}
    assert "REBUILD_MARKER__" not in {
        r[0]
        for r in rows(
            project, "SELECT COLUMN_NAME FROM INFORMATION_SCHEMA.COLUMNS WHERE TABLE_SCHEMA = 'PUBLIC'"
        )
    }
    assert_each_raw_event_in_exactly_one_table(project)
    report = reports(project, "ingestion_report")[-1]
    assert report["full_refresh"] is True and (report["raw"], report["accepted"], report["rejected"]) == (
        14,
        14,
        0,
    )
    run(project, "ingestion", **NO_DEMO)  # back to incremental merges: nothing new, nothing lost
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA") == 14


def test_full_refresh_that_stops_half_way_is_repaired_by_running_it_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = _project(tmp_path)
    state_before = rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE")
    original = SnowparkTableDataset.save

    def crash_on_rejected(self: SnowparkTableDataset, data: Any) -> None:
        if self._table_name == "REJECTED_EVENTS":
            raise RuntimeError("injected fault between the two rebuilds")
        original(self, data)

    monkeypatch.setattr(SnowparkTableDataset, "save", crash_on_rejected)
    with pytest.raises(Exception, match="injected fault"):
        _rebuild(project)
    monkeypatch.undo()
    # TRANSFORMED_DATA was replaced as a whole, REJECTED_EVENTS not yet; the watermark did not move
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA") == 15
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.REJECTED_EVENTS") == 3
    assert rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE") == state_before

    _rebuild(project)  # the same command again
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.REJECTED_EVENTS") == 0
    assert scalar(project, "SELECT COUNT(*) FROM PUBLIC.TRANSFORMED_DATA") == 15
    assert_each_raw_event_in_exactly_one_table(project)
    assert len(rows(project, "SELECT * FROM PUBLIC.INGESTION_STATE")) == len(state_before) + 1
