"""RECORD_ID and EVENT_TS parsing do not depend on the session's timestamp formats.

Snowflake renders ``CAST(ts AS STRING)`` with the session's TIMESTAMP_*_OUTPUT_FORMAT (settable per
account, user and session); the embedded warehouse ignores those parameters, so these tests pin
(1) that the SQL hashes timestamps through an explicit format and never through a plain cast,
(2) that the new text equals what the embedded warehouse produced before (existing RECORD_IDs stay
the same), and (3) that typed EVENT_TS columns are converted without going through text.
The same checks run on a live account in tests/snowflake/.
"""

from __future__ import annotations

from typing import Any

import pytest
from snowflake.snowpark import functions as F

from customer_segmentation.pipelines.ingestion.nodes import (
    RAW_EVENT_COLUMNS,
    RAW_LOAD_COLUMNS,
    _with_row_hash,
    select_new_events,
)
from tests.pipelines.ingestion.test_nodes import PARAMS, _empty_state, classified

STAMPS = [
    "2026-11-01 05:00:00",
    "2026-11-01 05:00:00.1",
    "2026-11-01 05:00:00.123456",
    "2026-11-01 05:00:10",
    None,
]


def _raw_table(session: Any, event_ts_type: str = "VARCHAR") -> Any:
    cols = {**{c: "VARCHAR" for c in RAW_EVENT_COLUMNS}, "EVENT_TS": event_ts_type, **RAW_LOAD_COLUMNS}
    session.sql(f"CREATE OR REPLACE TABLE RAW_T ({', '.join(f'{c} {t}' for c, t in cols.items())})").collect()
    return cols


def _insert(
    session: Any, event_ts: str | None, loaded_at: str | None, i: int, event_ts_type: str = "VARCHAR"
) -> None:
    session.sql(
        "INSERT INTO RAW_T (EVENT_ID, EVENT_TYPE, EVENT_TS, CUSTOMER_ID, ORDER_ID, AMOUNT, LOADED_AT, SOURCE_FILE, SOURCE_ROW) "
        f"SELECT ?, 'ORDER_CREATED', CAST(? AS {event_ts_type}), 'C1', ?, '1.00', CAST(? AS TIMESTAMP_NTZ), 'f', ?",
        params=[f"E{i}", event_ts, f"O{i}", loaded_at, i],
    ).collect()


def record_ids(raw: Any) -> Any:
    """EVENT_ID and RECORD_ID of every raw row, as the ingestion pipeline computes them."""
    session = raw.session
    batch, info = select_new_events(raw, _empty_state(session), PARAMS)
    previous = session.sql(
        "SELECT CAST(NULL AS VARCHAR) AS EVENT_ID, CAST(NULL AS VARCHAR) AS RECORD_ID WHERE 1 = 0"
    )
    # the classified batch keeps an accepted row's raw text only as CLEAN_* (its EVENT_ID trimmed)
    return classified(batch, previous, info, PARAMS).select(
        F.col("CLEAN_EVENT_ID").alias("EVENT_ID"), "RECORD_ID"
    )


def _legacy_record_id(frame: Any) -> Any:
    """RECORD_ID as computed before the explicit formats (plain casts): the ids already stored."""
    from snowflake.snowpark import Window

    parts = [
        F.coalesce(F.col(c).cast("string"), F.lit("\\N")) for c in (*RAW_EVENT_COLUMNS, *RAW_LOAD_COLUMNS)
    ]
    hashed = frame.with_column("_ROW_HASH", F.md5(F.concat_ws(F.lit("|"), *parts)))
    occurrence = F.row_number().over(Window.partition_by("_ROW_HASH").order_by("_ROW_HASH"))
    return hashed.with_column(
        "RECORD_ID", F.concat(F.col("_ROW_HASH"), F.lit("-"), occurrence.cast("string"))
    ).drop("_ROW_HASH")


@pytest.mark.parametrize("event_ts_type", ["VARCHAR", "TIMESTAMP_NTZ", "TIMESTAMP_TZ", "DATE"])
def test_record_ids_of_existing_rows_do_not_change(warehouse_session: Any, event_ts_type: str) -> None:
    _raw_table(warehouse_session, event_ts_type)
    for i, stamp in enumerate(STAMPS):
        _insert(
            warehouse_session,
            "2026-01-02 10:00:00" if event_ts_type != "DATE" else "2026-01-02",
            stamp,
            i,
            event_ts_type,
        )
    raw = warehouse_session.table("RAW_T")
    new = {r["EVENT_ID"]: r["RECORD_ID"] for r in record_ids(raw).collect()}
    old = {
        r["EVENT_ID"]: r["RECORD_ID"]
        for r in _legacy_record_id(raw).select("EVENT_ID", "RECORD_ID").collect()
    }
    assert len(new) == len(STAMPS) and new == old


def test_record_id_hashes_timestamps_with_an_explicit_format(warehouse_session: Any) -> None:
    """Where the emulator ignores ALTER SESSION formats, the SQL itself is the proof."""
    _raw_table(warehouse_session, "TIMESTAMP_NTZ")
    sql = _with_row_hash(warehouse_session.table("RAW_T")).queries["queries"][-1].upper()
    assert sql.count("TO_VARCHAR(") == 4  # LOADED_AT and the typed EVENT_TS, whole and fractional seconds
    assert "'YYYY-MM-DD HH24:MI:SS.FF9'" in sql
    assert 'CAST("LOADED_AT" AS STRING)' not in sql and 'CAST("EVENT_TS" AS STRING)' not in sql


def test_record_id_is_the_same_under_other_session_formats(warehouse_session: Any) -> None:
    """Runs on both targets: on Snowflake the ALTER SESSION changes plain casts, not RECORD_ID."""
    _raw_table(warehouse_session)
    for i, stamp in enumerate(STAMPS):
        _insert(warehouse_session, "2026-01-02 10:00:00", stamp, i)
    raw = warehouse_session.table("RAW_T")
    before = sorted(r["RECORD_ID"] for r in record_ids(raw).collect())
    warehouse_session.sql(
        "ALTER SESSION SET TIMESTAMP_OUTPUT_FORMAT = 'DY, DD MON YYYY HH24:MI', TIMESTAMP_NTZ_OUTPUT_FORMAT = 'MM/DD/YY'"
    ).collect()
    after = sorted(r["RECORD_ID"] for r in record_ids(raw).collect())
    assert before == after and len(set(after)) == len(STAMPS)


@pytest.mark.parametrize(
    ("event_ts_type", "value", "expected"),
    [
        ("TIMESTAMP_NTZ", "2026-01-02 10:00:00", "2026-01-02 10:00:00"),
        ("TIMESTAMP_TZ", "2026-01-02 10:00:00+02:00", "2026-01-02 08:00:00"),
        ("DATE", "2026-01-02", "2026-01-02 00:00:00"),
        ("VARCHAR", " 2026-01-02 10:00:00 ", "2026-01-02 10:00:00"),
    ],
)
def test_typed_event_ts_is_converted_without_text(
    warehouse_session: Any, event_ts_type: str, value: str, expected: str
) -> None:
    _raw_table(warehouse_session, event_ts_type)
    _insert(warehouse_session, value, "2026-11-01 05:00:00", 1, event_ts_type)
    params = {**PARAMS, "timestamp_formats": ["YYYY-MM-DD HH24:MI:SS"]}  # no format would read a DATE's text
    batch, info = select_new_events(warehouse_session.table("RAW_T"), _empty_state(warehouse_session), params)
    out = classified(
        batch,
        _empty_state(warehouse_session).select(
            F.col("PIPELINE").alias("EVENT_ID"), F.col("PIPELINE").alias("RECORD_ID")
        ),
        info,
        params,
    )
    row = out.select("REJECT_REASON", "CLEAN_EVENT_TS").collect()[0]
    assert row["REJECT_REASON"] is None
    assert str(row["CLEAN_EVENT_TS"]) == expected
