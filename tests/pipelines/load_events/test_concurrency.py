"""Two file loads overlapping an ingestion: no row is skipped, no stamp is shared.

On Snowflake a load can commit its rows after an ingestion has read RAW_DATA. The embedded
warehouse runs one process at a time, so the overlap is staged here step by step: load A takes
its stamp and registers ('loading'), load B runs completely, ingestion runs, then A writes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from customer_segmentation.datasets.event_files import stamped
from customer_segmentation.pipelines.ingestion.nodes import select_new_events
from customer_segmentation.pipelines.ingestion.params import IngestionParams
from customer_segmentation.pipelines.load_events.nodes import read_events_file
from customer_segmentation.warehouse.tables import append_pandas
from tests.datasets.test_event_files import PARAMS, _events_file, file_loads, load_file
from tests.pipelines.ingestion.test_nodes import PARAMS as INGESTION

FQN = ("SEGMENTATION.PUBLIC.RAW_DATA", "SEGMENTATION.PUBLIC.LOAD_HISTORY")


def _state(session: Any, watermark: Any) -> Any:
    if watermark is None:
        return session.sql(
            "SELECT CAST(NULL AS VARCHAR) AS PIPELINE, CAST(NULL AS TIMESTAMP_NTZ) AS WATERMARK WHERE 1 = 0"
        )
    return session.sql(
        "SELECT 'ingestion' AS PIPELINE, CAST(? AS TIMESTAMP_NTZ) AS WATERMARK", params=[str(watermark)]
    )


def _start_load(session: Any, path: Path, run_id: str) -> tuple[Any, dict[str, Any], Any]:
    """Load A up to its registration: stamp taken, LOAD_HISTORY says 'loading', no row written yet."""
    events, info = read_events_file(str(path), PARAMS)
    dataset = file_loads()
    dataset.ensure_tables(session)
    stamp = dataset.register_load(session, info, len(events), run_id)
    return events, info, stamp


def test_stamps_are_unique_even_before_rows_are_written(
    tmp_path: Path, warehouse_session: Any, query: Callable[[str], list[Any]]
) -> None:
    _, _, first = _start_load(warehouse_session, _events_file(tmp_path, 2, "a.csv"), "run-a")
    _, _, second = _start_load(warehouse_session, _events_file(tmp_path, 3, "b.csv"), "run-b")
    assert second > first  # A has no row in RAW_DATA yet: its registration alone moves the next stamp
    assert query("SELECT COUNT(*), COUNT(DISTINCT LOADED_AT) FROM LOAD_HISTORY WHERE STATUS = 'loading'") == [
        (2, 2)
    ]


def test_ingestion_never_skips_a_load_that_commits_later(
    tmp_path: Path, warehouse_session: Any, query: Callable[[str], list[Any]]
) -> None:
    session = warehouse_session
    events_a, info_a, stamp_a = _start_load(session, _events_file(tmp_path, 2, "a.csv"), "run-a")
    report_b = load_file(_events_file(tmp_path, 3, "b.csv"))
    assert report_b["status"] == "loaded"

    raw, history = session.table(FQN[0]), session.table(FQN[1])
    batch, info = select_new_events(raw, _state(session, None), INGESTION, history)
    # B is complete but stamped after A, which is still running: the watermark stays below A
    assert batch.count() == 0 and info["watermark_to"] is None
    assert info["waiting_for_load_at"] == str(stamp_a)

    append_pandas(session, "RAW_DATA", stamped(events_a, info_a["source_file"], stamp_a))
    file_loads().mark_loaded(session, info_a["file_sha256"], stamp_a)
    batch, info = select_new_events(raw, _state(session, info["watermark_to"]), INGESTION, history)
    assert batch.count() == 5 and info["waiting_for_load_at"] is None
    assert {r[0] for r in batch.select("SOURCE_FILE").distinct().collect()} == {
        info_a["source_file"],
        report_b["source_file"],
    }


def test_a_crashed_load_stops_holding_ingestion_back(
    tmp_path: Path, warehouse_session: Any, caplog: Any
) -> None:
    session = warehouse_session
    _start_load(session, _events_file(tmp_path, 2, "a.csv"), "run-a")  # never finishes
    load_file(_events_file(tmp_path, 3, "b.csv"))
    raw, history = session.table(FQN[0]), session.table(FQN[1])
    later = {**INGESTION, "as_of": "2099-01-01 00:00:00", "future_tolerance_hours": 1}
    batch, info = select_new_events(raw, _state(session, None), later, history)
    assert batch.count() == 3 and info["waiting_for_load_at"] is None
    assert "never finished" in caplog.text and "a.csv" in caplog.text


def test_load_wait_hours_must_be_positive() -> None:
    from customer_segmentation.errors import InvalidParametersError

    for bad in (0, -1, "soon"):
        with pytest.raises(InvalidParametersError, match="ingestion.load_wait_hours"):
            IngestionParams.of(INGESTION, load_wait_hours=bad)
