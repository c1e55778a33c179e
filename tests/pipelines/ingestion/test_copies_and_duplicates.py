"""RECORD_IDs and duplicate decisions on a batch full of exact copies and repeated EVENT_IDs.

``number_repeated_records`` numbers only the rows that need it (exact copies, EVENT_IDs seen twice);
this checks the result row by row against an independent pandas computation of the contract:
RECORD_ID = MD5 of the raw text joined by '|' (NULL as '\\N') + '-' + occurrence among exact
copies; among otherwise valid events the record already accepted for an EVENT_ID stays accepted,
else the first load wins (LOADED_AT, NULLs last, then SOURCE_FILE, SOURCE_ROW, RECORD_ID).
"""

from __future__ import annotations

import hashlib
import random
from typing import Any

import pandas as pd
import pytest

from customer_segmentation.pipelines.ingestion.nodes import select_new_events
from customer_segmentation.warehouse.tables import RAW_COLUMNS
from tests.pipelines.ingestion.test_nodes import GOOD, PARAMS, _empty_state, _previous, _raw, classified

LOADS = ["2026-11-01 05:00:00", "2026-11-01 05:30:00", None]


def _messy_rows(seed: int) -> list[dict[str, Any]]:
    """Three loads (one without stamps) re-sending events, with exact copies up to 12 times."""
    rng = random.Random(seed)
    rows: list[dict[str, Any]] = []
    for i in range(400):
        loaded_at = rng.choice(LOADS)
        row = {
            **GOOD,
            "EVENT_ID": f" E{rng.randrange(150)} " if rng.random() < 0.2 else f"E{rng.randrange(150)}",
            "CUSTOMER_ID": f"C{rng.randrange(20)}",
            "AMOUNT": rng.choice(["12.50", "3.00", "12,50 EUR"]),  # about one in three is bad_amount
            "LOADED_AT": loaded_at,
            "SOURCE_FILE": None if loaded_at is None else rng.choice(["a.csv", "b.csv"]),
            "SOURCE_ROW": None if loaded_at is None and rng.random() < 0.5 else rng.randrange(30),
        }
        if rng.random() < 0.08:  # missing EVENT_IDs (NULL or blank), copies of them too
            row["EVENT_ID"] = rng.choice([None, "  "])
        rows.extend([row] * (1 if rng.random() < 0.7 else rng.randrange(2, 13)))
    rng.shuffle(rows)
    return rows


def _row_hash(row: dict[str, Any] | pd.Series) -> str:
    """MD5 of the row's raw text joined by '|' (NULL as '\\N'): the RECORD_ID contract, before the occurrence."""
    parts = []
    for column in RAW_COLUMNS:
        value = row.get(column)
        if value is None or (not isinstance(value, str) and pd.isna(value)):
            parts.append("\\N")
        else:
            parts.append(str(int(value)) if column == "SOURCE_ROW" else str(value))
    return hashlib.md5("|".join(parts).encode()).hexdigest()


def _expected(rows: list[dict[str, Any]], previous: dict[str, str]) -> list[tuple[str, str | None]]:
    """(RECORD_ID, REJECT_REASON) of every row, computed in pandas from the contract alone."""
    frame = pd.DataFrame(rows)
    for column in RAW_COLUMNS:
        if column not in frame:
            frame[column] = None
    frame["HASH"] = frame.apply(_row_hash, axis=1)
    frame["RECORD_ID"] = frame["HASH"] + "-" + (frame.groupby("HASH").cumcount() + 1).astype(str)
    frame["REASON"] = frame["AMOUNT"].map(lambda a: "bad_amount" if a == "12,50 EUR" else None)
    missing = frame["EVENT_ID"].map(lambda v: v is None or not str(v).strip())
    frame.loc[missing, "REASON"] = "missing_event_id"  # the first check
    frame["KEY"] = frame["EVENT_ID"].str.strip()
    valid = frame[frame["REASON"].isna()].copy()
    valid["LOADED_RANK"] = valid["LOADED_AT"].map(lambda v: (v is None, v or ""))
    duplicates = set()
    for key, group in valid.groupby("KEY"):
        if key in previous:
            duplicates |= set(group.index[group["RECORD_ID"] != previous[key]])
            continue
        ordered = group.assign(
            FILE=group["SOURCE_FILE"].map(lambda v: (v is not None, v or "")),  # NULLS FIRST
            ROW=group["SOURCE_ROW"].map(lambda v: (v is not None and not pd.isna(v), 0 if pd.isna(v) else v)),
        ).sort_values(["LOADED_RANK", "FILE", "ROW", "RECORD_ID"])
        duplicates |= set(ordered.index[1:])
    frame.loc[list(duplicates), "REASON"] = "duplicate_event"
    return sorted(zip(frame["RECORD_ID"], frame["REASON"].where(frame["REASON"].notna(), None)))


#: The raw text REJECTED_EVENTS keeps (the typed batch holds it only for rows that can be rejected).
RAW_TEXT = ("EVENT_ID", "EVENT_TYPE", "EVENT_TS", "CUSTOMER_ID", "QUANTITY", "AMOUNT", "SOURCE_FILE")


def _raw_text_by_hash(rows: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    """The input's raw text per row hash (exact copies share both), computed like _expected's RECORD_IDs."""
    return {_row_hash(row): tuple(row.get(c) for c in RAW_TEXT) for row in rows}


def _classified(session: Any, raw: Any, previous: Any, rows: list[dict[str, Any]] | None = None) -> list:
    """(RECORD_ID, REJECT_REASON, CLEAN_EVENT_ID) of every row, sorted.

    With the input ``rows``: also checks that every rejected row carries its raw text as it came
    (REJECTED_EVENTS is written from it), and that rows without a reason (accepted) have CLEAN_* values.
    """
    batch, info = select_new_events(raw, _empty_state(session), PARAMS)
    out = classified(batch, previous, info, PARAMS).collect()
    if rows is not None:
        by_hash = _raw_text_by_hash(rows)
        rejected = [r for r in out if r["REJECT_REASON"] is not None]
        assert rejected and all(
            tuple(r[c] for c in RAW_TEXT) == by_hash[r["RECORD_ID"].rsplit("-", 1)[0]] for r in rejected
        )
        assert all(r["CLEAN_EVENT_ID"] and r["CLEAN_EVENT_TS"] for r in out if r["REJECT_REASON"] is None)
    return sorted((r["RECORD_ID"], r["REJECT_REASON"], r["CLEAN_EVENT_ID"]) for r in out)


def _decisions(classified: list[tuple[str, str | None, str]]) -> list[tuple[str, str | None]]:
    return [(record_id, reason) for record_id, reason, _ in classified]


def test_copies_and_repeated_event_ids_match_an_independent_computation(warehouse_session: Any) -> None:
    rows = _messy_rows(seed=13)
    raw = _raw(warehouse_session, rows)
    got = _classified(warehouse_session, raw, _previous(warehouse_session, []), rows)
    expected = _expected(rows, {})
    assert len(got) == len(rows) and len({r[0] for r in got}) == len(rows)
    assert sum(1 for _, reason in expected if reason == "duplicate_event") > 100  # the case is exercised
    assert _decisions(got) == expected

    # re-processing the same batch once its accepted records are in TRANSFORMED_DATA (a retry
    # after a crash): the same RECORD_IDs, every accepted record stays accepted, no new duplicate
    pairs = sorted({(key, record_id) for record_id, reason, key in got if reason is None})
    assert len(pairs) == len({key for key, _ in pairs})  # one accepted record per EVENT_ID
    again = _classified(warehouse_session, raw, _previous(warehouse_session, pairs), rows)
    assert again == got
    assert _decisions(again) == _expected(rows, dict(pairs))


def test_a_later_load_of_accepted_events_is_all_duplicates(warehouse_session: Any) -> None:
    """Across loads: events accepted earlier and sent again (changed or exact) are duplicates."""
    rows = [r for r in _messy_rows(seed=7) if r["LOADED_AT"] == LOADS[1]]
    raw = _raw(warehouse_session, rows)
    earlier = {f"E{i}": f"accepted-earlier-{i}" for i in range(0, 150, 2)}  # half the EVENT_IDs
    got = _classified(warehouse_session, raw, _previous(warehouse_session, sorted(earlier.items())), rows)
    assert _decisions(got) == _expected(rows, earlier)
    keys = {
        r["EVENT_ID"].strip() for r in rows if r["AMOUNT"] != "12,50 EUR" and (r["EVENT_ID"] or "").strip()
    }
    assert any(k in earlier for k in keys) and any(k not in earlier for k in keys)


def test_only_rows_with_a_repeated_or_missing_event_id_are_numbered(warehouse_session: Any) -> None:
    """Rows without an EVENT_ID must not put every row in the numbered set (NULL in an IN list)."""
    from customer_segmentation.pipelines.ingestion.nodes import classify_events, number_repeated_records

    stamp = {"LOADED_AT": "2026-11-01 05:00:00", "SOURCE_FILE": "f"}
    rows = [dict(GOOD, EVENT_ID=f"E{i}", SOURCE_ROW=i, **stamp) for i in range(10)]
    rows += [dict(GOOD, EVENT_ID="E3", SOURCE_ROW=20, **stamp)]  # E3 twice
    rows += [dict(GOOD, EVENT_ID=None, SOURCE_ROW=30 + i, **stamp) for i in range(3)]  # three without id
    batch, info = select_new_events(_raw(warehouse_session, rows), _empty_state(warehouse_session), PARAMS)
    typed = classify_events(batch, _previous(warehouse_session, []), info, PARAMS)
    numbered = number_repeated_records(typed).select("SOURCE_ROW").collect()
    assert sorted(int(r[0]) for r in numbered) == [3, 20, 30, 31, 32]


def test_the_typed_batch_keeps_raw_text_only_where_a_row_can_be_rejected(warehouse_session: Any) -> None:
    """Raw EVENT_ID/EVENT_TYPE/EVENT_TS/QUANTITY/AMOUNT text stays for rows that fail a check, repeat an
    EVENT_ID in the batch or were accepted before; every other row is accepted from its CLEAN_* values."""
    from customer_segmentation.pipelines.ingestion.nodes import classify_events, find_repeated_event_ids

    stamp = {"LOADED_AT": "2026-11-01 05:00:00", "SOURCE_FILE": "f"}
    rows = [dict(GOOD, EVENT_ID=f" E{i}", SOURCE_ROW=i, **stamp) for i in range(6)]
    rows += [dict(GOOD, EVENT_ID="E3", SOURCE_ROW=20, **stamp)]  # E3 again (trimmed equal)
    rows += [dict(GOOD, EVENT_ID="E7", SOURCE_ROW=21, AMOUNT="x", **stamp)]  # bad_amount
    rows += [dict(GOOD, EVENT_ID="E8", SOURCE_ROW=22, **stamp)]  # accepted before
    batch, info = select_new_events(_raw(warehouse_session, rows), _empty_state(warehouse_session), PARAMS)
    repeated = find_repeated_event_ids(batch)
    assert [r[0] for r in repeated.collect()] == ["E3"]
    typed = classify_events(
        batch, _previous(warehouse_session, [("E8", "old-record")]), info, PARAMS, repeated
    )
    kept = {
        int(r["SOURCE_ROW"]): (r["EVENT_ID"], r["AMOUNT"], r["EVENT_TS"] is not None, r["CUSTOMER_ID"])
        for r in typed.collect()
    }
    customer = GOOD["CUSTOMER_ID"]
    assert kept == {
        **{i: (None, None, False, customer) for i in (0, 1, 2, 4, 5)},  # surely accepted: no raw text
        3: (" E3", GOOD["AMOUNT"], True, customer),
        20: ("E3", GOOD["AMOUNT"], True, customer),
        21: ("E7", "x", True, customer),
        22: ("E8", GOOD["AMOUNT"], True, customer),
    }


def test_repeated_values_equal_pandas_and_the_hash_only_narrows(
    warehouse_session: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``_repeated`` groups a 64-bit hash first (100M distinct texts ran out of the 640MB cap), then
    the text of the candidates: the same values as a plain count, NULLs left out. A constant hash
    (every value collides) still gives exactly the repeated values. A frame known to be small
    (``rows``, up to TEXT_GROUP_MAX_ROWS) is grouped by its text in one pass: the same values."""
    from snowflake.snowpark import functions as F

    from customer_segmentation.pipelines.ingestion import nodes

    rng = random.Random(3)
    values = [rng.choice([None, *[f"id-{i}" for i in range(400)]]) for _ in range(600)]
    warehouse_session.sql("CREATE TABLE REPEATS_T (K VARCHAR)").collect()
    rows = ", ".join("(NULL)" if v is None else f"('{v}')" for v in values)
    warehouse_session.sql(f"INSERT INTO REPEATS_T VALUES {rows}").collect()
    frame = warehouse_session.table("REPEATS_T")
    counts = pd.Series([v for v in values if v is not None]).value_counts()
    expected = sorted(counts[counts > 1].index)
    assert sorted(r[0] for r in nodes._repeated(frame, "K").collect()) == expected
    sql = " ".join(nodes._repeated(frame, "K").queries["queries"]).upper()
    assert "HASH(" in sql
    assert (
        sql
        == " ".join(
            nodes._repeated(frame, "K", rows=nodes.TEXT_GROUP_MAX_ROWS + 1).queries["queries"]
        ).upper()
    )
    small = nodes._repeated(frame, "K", rows=len(values))
    assert "HASH(" not in " ".join(small.queries["queries"]).upper()
    assert sorted(r[0] for r in small.collect()) == expected
    at_the_bound = nodes._repeated(frame, "K", rows=nodes.TEXT_GROUP_MAX_ROWS)  # "up to": still one pass
    assert "HASH(" not in " ".join(at_the_bound.queries["queries"]).upper()
    # the ingestion node counts its batch: a small batch takes the one text pass
    batch = warehouse_session.sql("SELECT K AS EVENT_ID FROM REPEATS_T")
    found = nodes.find_repeated_event_ids(batch)
    assert "HASH(" not in " ".join(found.queries["queries"]).upper()
    assert sorted(r[0] for r in found.collect()) == expected
    # every hash equal: each value is a candidate, and the text count alone decides
    monkeypatch.setattr(nodes.F, "hash", lambda column: F.length(column) * F.lit(0))
    assert sorted(r[0] for r in nodes._repeated(frame, "K").collect()) == expected
