"""Ingestion nodes on a small embedded warehouse: reasons, duplicates, full refresh, parameters."""

from __future__ import annotations

from typing import Any

import pandas as pd
import pytest

from customer_segmentation.errors import InvalidParametersError, MissingColumnsError
from customer_segmentation.pipelines.ingestion.nodes import (
    BATCH_DIGEST,
    REJECTION_REASONS,
    RejectionRateExceededError,
    _id_digest,
    classify_events,
    find_repeated_event_ids,
    number_repeated_records,
    resolve_duplicates,
    select_new_events,
    split_events,
)
from customer_segmentation.pipelines.ingestion.params import IngestionParams
from customer_segmentation.warehouse.tables import RAW_COLUMNS, create_table_sql

PARAMS = {
    "full_refresh": False,
    "purchase_event_types": ["ORDER_CREATED", "ORDER_CANCELLED", "ORDER_RETURNED"],
    "other_event_types": ["PAGE_VIEW"],
    "timestamp_formats": ["YYYY-MM-DD HH24:MI:SS", "YYYY-MM-DD"],
    "future_tolerance_hours": 24,
    "max_rejection_rate": 1.0,
    "as_of": "2026-11-01 06:00:00",
}
GOOD = {
    "EVENT_ID": "E1",
    "EVENT_TYPE": "ORDER_CREATED",
    "EVENT_TS": "2026-01-02 10:00:00",
    "CUSTOMER_ID": "C1",
    "ORDER_ID": "O1",
    "PRODUCT_ID": "P1",
    "CATEGORY": "Vins",
    "QUANTITY": "2",
    "AMOUNT": "12.50",
    "CHANNEL": "web",
}
#: One raw event per rejection reason (duplicate_event: the second E1 below).
DEFECTS = {
    "missing_event_id": {"EVENT_ID": " "},
    "unknown_event_type": {"EVENT_TYPE": "ORDER_TELEPORTED"},
    "missing_customer": {"CUSTOMER_ID": None},
    "bad_timestamp": {"EVENT_TS": "31/02/2025 25:61"},
    "future_timestamp": {"EVENT_TS": "2099-01-01 00:00:00"},
    "missing_order_id": {"ORDER_ID": ""},
    "bad_amount": {"AMOUNT": "12,50 EUR"},
    "negative_amount": {"AMOUNT": "-3.00"},
    "bad_quantity": {"QUANTITY": "0"},
}


def _raw(session: Any, rows: list[dict[str, Any]], table: str = "RAW_DATA") -> Any:
    session.sql(create_table_sql("SEGMENTATION", "PUBLIC", table, RAW_COLUMNS)).collect()
    frame = pd.DataFrame(rows)
    for column in RAW_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["LOADED_AT"] = pd.to_datetime(frame["LOADED_AT"])
    frame["SOURCE_ROW"] = frame["SOURCE_ROW"].astype("Int64")
    session.write_pandas(
        frame[list(RAW_COLUMNS)], table, auto_create_table=False, overwrite=False, use_logical_type=True
    )
    return session.table(table)


def _previous(session: Any, pairs: list[tuple[str, str]]) -> Any:
    session.sql("CREATE OR REPLACE TABLE PREV (EVENT_ID VARCHAR, RECORD_ID VARCHAR)").collect()
    for event_id, record_id in pairs:
        session.sql("INSERT INTO PREV VALUES (?, ?)", params=[event_id, record_id]).collect()
    return session.table("PREV")


def _empty_state(session: Any) -> Any:
    return session.sql(
        "SELECT CAST(NULL AS VARCHAR) AS PIPELINE, CAST(NULL AS TIMESTAMP_NTZ) AS WATERMARK WHERE 1 = 0"
    )


def classified(batch: Any, previous: Any, info: dict[str, Any], params: dict[str, Any]) -> Any:
    """The classified batch as the pipeline builds it: the repeated EVENT_IDs, classify_events, then the
    two duplicate nodes."""
    repeated = find_repeated_event_ids(batch)
    typed = classify_events(batch, previous, info, params, repeated)
    return resolve_duplicates(typed, number_repeated_records(typed, repeated))


def _classify(session: Any, raw: Any, previous: Any, **params: Any) -> pd.DataFrame:
    p = {**PARAMS, **params}
    batch, info = select_new_events(raw, _empty_state(session), p)
    return classified(batch, previous, info, p).to_pandas()


def test_every_reason_is_machine_readable(warehouse_session: Any) -> None:
    rows = [dict(GOOD, SOURCE_ROW=1, LOADED_AT="2026-11-01 05:00:00", SOURCE_FILE="f")]
    for i, (reason, change) in enumerate(DEFECTS.items(), start=2):
        rows.append(
            {
                **GOOD,
                "EVENT_ID": f"E{i}",
                "SOURCE_ROW": i,
                "LOADED_AT": "2026-11-01 05:00:00",
                "SOURCE_FILE": "f",
                **change,
            }
        )
    rows.append(dict(GOOD, SOURCE_ROW=99, LOADED_AT="2026-11-01 05:00:00", SOURCE_FILE="f", AMOUNT="13.00"))
    raw = _raw(warehouse_session, rows)
    out = _classify(warehouse_session, raw, _previous(warehouse_session, [])).set_index("SOURCE_ROW")
    expected = {1: None, **{i: reason for i, reason in enumerate(DEFECTS, start=2)}, 99: "duplicate_event"}
    got = {int(k): (v if isinstance(v, str) else None) for k, v in out["REJECT_REASON"].items()}
    assert got == expected
    assert set(DEFECTS) | {"duplicate_event"} == set(REJECTION_REASONS)
    assert out["RECORD_ID"].is_unique


def test_previously_accepted_record_stays_accepted_when_a_copy_arrives(warehouse_session: Any) -> None:
    """An event accepted earlier with no LOADED_AT, re-checked with a later-loaded copy: the copy is the duplicate."""
    raw = _raw(
        warehouse_session,
        [
            dict(GOOD, SOURCE_ROW=1, LOADED_AT=None, SOURCE_FILE=None),
            dict(GOOD, SOURCE_ROW=1, LOADED_AT="2026-11-01 05:00:00", SOURCE_FILE="later.csv"),
        ],
    )
    first = _classify(warehouse_session, raw, _previous(warehouse_session, []))
    original_id = first.loc[first["SOURCE_FILE"].isna(), "RECORD_ID"].item()
    out = _classify(warehouse_session, raw, _previous(warehouse_session, [("E1", original_id)]))
    reasons = dict(
        zip(out["SOURCE_FILE"].fillna("none"), out["REJECT_REASON"].where(out["REJECT_REASON"].notna(), None))
    )
    assert reasons == {"none": None, "later.csv": "duplicate_event"}


def test_full_refresh_ignores_what_transformed_data_held(warehouse_session: Any) -> None:
    raw = _raw(
        warehouse_session, [dict(GOOD, SOURCE_ROW=1, LOADED_AT="2026-11-01 05:00:00", SOURCE_FILE="f")]
    )
    stale = _previous(warehouse_session, [("E1", "some-record-whose-raw-row-is-gone")])
    assert _classify(warehouse_session, raw, stale)["REJECT_REASON"].tolist() == ["duplicate_event"]
    assert _classify(warehouse_session, raw, stale, full_refresh=True)["REJECT_REASON"].isna().all()


def test_rate_above_threshold_fails_before_writing(warehouse_session: Any) -> None:
    rows = [
        dict(GOOD, EVENT_ID=f"E{i}", SOURCE_ROW=i, LOADED_AT="2026-11-01 05:00:00", SOURCE_FILE="f")
        for i in range(9)
    ]
    rows.append(
        dict(
            GOOD, EVENT_ID="BAD", SOURCE_ROW=10, LOADED_AT="2026-11-01 05:00:00", SOURCE_FILE="f", AMOUNT="x"
        )
    )
    raw = _raw(warehouse_session, rows)
    p = {**PARAMS, "max_rejection_rate": 0.05}
    batch, info = select_new_events(raw, _empty_state(warehouse_session), p)
    classified_batch = classified(batch, _previous(warehouse_session, []), info, p)
    with pytest.raises(RejectionRateExceededError) as excinfo:
        split_events(classified_batch, info, {"run_id": "r"}, p)
    message = str(excinfo.value)
    assert (
        "1 of 10" in message
        and "ingestion.max_rejection_rate" in message
        and "Nothing was written" in message
    )
    assert "'bad_amount': 1" in message
    good, bad, counts = split_events(
        classified_batch, info, {"run_id": "r"}, {**p, "max_rejection_rate": 0.1}
    )
    assert (counts["raw"], counts["accepted"], counts["rejected"]) == (10, 9, 1)
    # the counting scan also took the batch's RECORD_ID digest, the one reconcile_ingestion would scan for
    assert counts[BATCH_DIGEST] == _id_digest(classified_batch, "RECORD_ID")


def test_raw_data_missing_a_column_is_named(warehouse_session: Any) -> None:
    warehouse_session.sql("CREATE TABLE RAW_DATA (EVENT_ID VARCHAR, EVENT_TYPE VARCHAR)").collect()
    with pytest.raises(MissingColumnsError) as excinfo:
        select_new_events(warehouse_session.table("RAW_DATA"), _empty_state(warehouse_session), PARAMS)
    assert "EVENT_TS, CUSTOMER_ID, ORDER_ID" in str(excinfo.value)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        (
            {"max_rejection_rate": 1.5},
            "ingestion.max_rejection_rate: Input should be less than or equal to 1",
        ),
        ({"max_rejection_rate": "lots"}, "ingestion.max_rejection_rate: Input should be a valid number"),
        ({"full_refresh": "false"}, "ingestion.full_refresh: Input should be a valid boolean"),
        ({"timestamp_formats": []}, "ingestion.timestamp_formats: List should have at least 1 item"),
        ({"purchase_event_types": None}, "ingestion.purchase_event_types: Input should be a valid list"),
        (
            {"future_tolerance_hours": -1},
            "ingestion.future_tolerance_hours: Input should be greater than or equal to 0",
        ),
        ({"as_of": "yesterday"}, "ingestion.as_of: Input should be a valid datetime"),
    ],
)
def test_invalid_parameters_are_named(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(InvalidParametersError) as excinfo:
        IngestionParams.of(PARAMS, **change)
    assert fragment in str(excinfo.value)


def test_default_parameters_are_valid() -> None:
    import yaml

    from tests.conftest import PROJECT_ROOT

    params = yaml.safe_load((PROJECT_ROOT / "conf/base/parameters_ingestion.yml").read_text())["ingestion"]
    assert IngestionParams.of(params) == IngestionParams()  # the defaults live in the model
