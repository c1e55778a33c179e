"""Small pandas frames written with one INSERT of bound values instead of a staged file (tables.insert_values)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.datasets.monitoring import WarehouseTableDataset
from customer_segmentation.warehouse import tables
from customer_segmentation.warehouse.tables import append_pandas, insert_values, sql_type_of


def every_type() -> pd.DataFrame:
    """One column of each type monitoring writes, each with a NULL of its kind."""
    return pd.DataFrame(
        {
            "FLAG": pd.array([True, False, None], dtype="boolean"),
            "N": [3, -2, 7],
            "MAYBE_N": pd.array([1, None, 40_000_000_000], dtype="Int64"),
            "X": [0.1, float("nan"), -1.5e-300],
            "STAMP": pd.to_datetime(["2026-12-01 06:00:00.123456", None, "1999-01-01 00:00:00.000000"]),
            "ON_DAY": [date(2026, 12, 1), None, date(1970, 1, 1)],
            "LABEL": ["Champions", None, 'l\'été; "quoted" -- not SQL'],
        }
    )


def create(session: Any, name: str, frame: pd.DataFrame) -> list[str]:
    types = [sql_type_of(frame[c]) for c in frame.columns]
    ddl = ", ".join(f"{c} {t}" for c, t in zip(frame.columns, types, strict=True))
    session.sql(f"CREATE OR REPLACE TABLE {name} ({ddl})").collect()
    return types


def table_rows(session: Any, name: str) -> list[tuple]:
    return [tuple(r) for r in session.sql(f"SELECT * FROM {name} ORDER BY N").collect()]


def test_bound_rows_equal_the_staged_rows_nulls_included(warehouse_session: Any) -> None:
    frame = every_type()
    types = create(warehouse_session, "BOUND", frame)
    create(warehouse_session, "STAGED", frame)
    with warehouse_session.query_history() as sent:
        assert insert_values(warehouse_session, "BOUND", frame, types)
    assert [q.sql_text.split()[0] for q in sent.queries] == ["INSERT"]  # one statement, no stage
    append_pandas(warehouse_session, "STAGED", frame)
    bound = table_rows(warehouse_session, "BOUND")
    assert bound == table_rows(warehouse_session, "STAGED")
    by_n = {row[1]: row for row in bound}
    assert by_n[-2] == (False, -2, None, None, None, None, None)  # every NULL kind is NULL
    assert by_n[7][3] == -1.5e-300 and by_n[7][6] == 'l\'été; "quoted" -- not SQL'  # values bound as they are
    assert by_n[3][4] == datetime(2026, 12, 1, 6, 0, 0, 123456) and by_n[3][5] == date(2026, 12, 1)


@pytest.mark.parametrize(
    ("column", "values"),
    [
        ("INF", [1.0, math.inf, 2.0]),  # an infinity: staged, as the file carries it
        ("AWARE", pd.to_datetime(["2026-12-01 06:00"] * 3).tz_localize(UTC)),  # a time zone
        ("OBJ", [{"a": 1}, None, [1, 2]]),  # objects in a text column
    ],
)
def test_values_not_bound_as_they_are_leave_the_frame_to_staging(
    warehouse_session: Any, column: str, values: Any
) -> None:
    frame = pd.DataFrame({"N": [1, 2, 3], column: values})
    types = create(warehouse_session, f"T_{column}", frame)
    assert not insert_values(warehouse_session, f"T_{column}", frame, types)
    assert warehouse_session.sql(f"SELECT COUNT(*) FROM T_{column}").collect()[0][0] == 0  # nothing written


def test_too_many_values_or_no_row_are_not_bound(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    frame = pd.DataFrame({"N": np.arange(10), "X": np.linspace(0, 1, 10)})
    types = create(warehouse_session, "T_SIZE", frame)
    monkeypatch.setattr(tables, "MAX_BOUND_VALUES", 19)
    assert not insert_values(warehouse_session, "T_SIZE", frame, types)
    assert not insert_values(warehouse_session, "T_SIZE", frame.head(0), types)
    monkeypatch.setattr(tables, "MAX_BOUND_VALUES", 20)
    assert insert_values(warehouse_session, "T_SIZE", frame, types)
    assert warehouse_session.sql("SELECT COUNT(*), SUM(X) FROM T_SIZE").collect()[0][0] == 10


def test_a_monitoring_table_written_from_a_small_frame_is_not_staged(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from customer_segmentation.datasets import monitoring

    staged = []
    original = monitoring.append_pandas
    monkeypatch.setattr(monitoring, "append_pandas", lambda *a, **k: (staged.append(a[1]), original(*a, **k)))
    profiles = WarehouseTableDataset(
        table_name="T_PROFILES", save_args={"mode": "replace_snapshot", "snapshot_column": "SNAPSHOT_DATE"}
    )
    day = pd.DataFrame(
        {"SNAPSHOT_DATE": [date(2026, 12, 1)] * 2, "SEGMENT_ID": [0, 1], "SHARE": [0.25, 0.75]}
    )
    with warehouse_session.query_history() as sent:
        profiles.save(day)
        profiles.save(day.assign(SHARE=[0.5, 0.5]))  # the same day again: replaced
    assert not staged  # no stage, PUT or COPY: the rows went in with one INSERT each time
    assert sum(q.sql_text.startswith("INSERT INTO") and "VALUES" in q.sql_text for q in sent.queries) == 2
    assert profiles.load().sort("SEGMENT_ID").to_pandas()["SHARE"].tolist() == [0.5, 0.5]
    # a frame over the limit is staged, with the same result
    monkeypatch.setattr(tables, "MAX_BOUND_VALUES", 4)
    profiles.save(day.assign(SHARE=[0.1, 0.9]))
    assert len(staged) == 1
    assert profiles.load().sort("SEGMENT_ID").to_pandas()["SHARE"].tolist() == [0.1, 0.9]
