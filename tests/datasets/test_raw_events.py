"""RawEventsDataset: RAW_DATA appended to in bulk from pandas; an empty frame writes nothing."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from customer_segmentation.datasets import RawEventsDataset
from customer_segmentation.demo.seeding import no_events
from customer_segmentation.errors import MissingColumnsError
from customer_segmentation.warehouse.tables import RAW_COLUMNS


def _rows(n: int, start: int = 0) -> pd.DataFrame:
    records = [
        {c: None for c in RAW_COLUMNS}
        | {
            "EVENT_ID": f"E{i}",
            "EVENT_TYPE": "PAGE_VIEW",
            "CUSTOMER_ID": "C1",
            "LOADED_AT": pd.Timestamp("2026-01-01 06:00:00"),
            "SOURCE_FILE": "demo://t",
            "SOURCE_ROW": i + 1,
        }
        for i in range(start, start + n)
    ]
    return pd.DataFrame(records, columns=list(RAW_COLUMNS))


def _columns(session: Any, schema: str = "PUBLIC") -> list[tuple[str, str]]:
    return [
        (r[0], r[1])
        for r in session.sql(
            "SELECT COLUMN_NAME, DATA_TYPE FROM SEGMENTATION.INFORMATION_SCHEMA.COLUMNS "
            "WHERE TABLE_NAME = 'RAW_DATA' AND TABLE_SCHEMA = ? ORDER BY ORDINAL_POSITION",
            params=[schema],
        ).collect()
    ]


def test_empty_frame_creates_nothing_then_rows_are_appended(warehouse_session: Any) -> None:
    dataset = RawEventsDataset(table_name="RAW_DATA", save_args={"mode": "append"})
    dataset.save(no_events())
    assert _columns(warehouse_session) == []  # no table created for nothing
    dataset.save(_rows(3))
    assert [c for c, _ in _columns(warehouse_session)] == list(RAW_COLUMNS)  # the contract, not pandas' guess
    dataset.save(_rows(2, start=3))
    dataset.save(no_events())
    loaded = dataset.load().sort("SOURCE_ROW").collect()
    assert [r["EVENT_ID"] for r in loaded] == ["E0", "E1", "E2", "E3", "E4"]


def test_a_table_without_a_column_is_refused(warehouse_session: Any) -> None:
    warehouse_session.sql("CREATE TABLE RAW_DATA (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR)").collect()
    with pytest.raises(Exception) as excinfo:  # Kedro wraps it in a DatasetError
        RawEventsDataset(table_name="RAW_DATA").save(_rows(1))
    assert isinstance(excinfo.value.__cause__, MissingColumnsError)
    assert "lacks column(s) EVENT_TS" in str(excinfo.value) and "nothing was appended" in str(excinfo.value)


def test_a_table_in_another_schema_gets_the_rows_and_the_session_schema_none(warehouse_session: Any) -> None:
    warehouse_session.sql("CREATE SCHEMA IF NOT EXISTS SEGMENTATION.OTHER").collect()
    RawEventsDataset(table_name="RAW_DATA", schema="OTHER").save(_rows(2))
    assert _columns(warehouse_session) == []  # nothing in the session's schema (PUBLIC)
    loaded = warehouse_session.sql("SELECT EVENT_ID FROM SEGMENTATION.OTHER.RAW_DATA ORDER BY 1").collect()
    assert [r[0] for r in loaded] == ["E0", "E1"]
