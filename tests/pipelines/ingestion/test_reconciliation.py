"""reconcile_ingestion reads the targets only in the batch's LOADED_AT range, and still catches gaps."""

from __future__ import annotations

from typing import Any

import pytest

from customer_segmentation.pipelines.ingestion.nodes import ReconciliationError, reconcile_ingestion

DAY1, DAY2 = "2026-11-01 06:00:00", "2026-11-02 06:00:00"


def _table(session: Any, name: str, rows: list[tuple[str, str | None]]) -> Any:
    session.sql(f"CREATE OR REPLACE TABLE {name} (RECORD_ID VARCHAR, LOADED_AT TIMESTAMP_NTZ)").collect()
    for record_id, loaded_at in rows:
        stamp = "NULL" if loaded_at is None else f"'{loaded_at}'::TIMESTAMP_NTZ"
        session.sql(f"INSERT INTO {name} VALUES ('{record_id}', {stamp})").collect()
    return session.table(name)


def _counts(raw: int, batch_from: str | None, batch_to: str) -> dict[str, Any]:
    return {"raw": raw, "run_id": "r", "watermark_from": batch_from, "watermark_to": batch_to}


def test_a_daily_batch_is_checked_against_its_own_range_only(warehouse_session: Any) -> None:
    s = warehouse_session
    # day 1 is already ingested (a1 accepted, x1 rejected); day 2 brings a2 (accepted), x2 (rejected)
    # and n2, whose LOADED_AT is NULL (a row without load stamp is in every batch)
    transformed = _table(s, "T", [("a1", DAY1), ("a2", DAY2), ("n2", None)])
    rejected = _table(s, "R", [("x1", DAY1), ("x2", DAY2)])
    raw = _table(s, "RAW", [("a1", DAY1), ("x1", DAY1), ("a2", DAY2), ("x2", DAY2), ("n2", None)])
    batch = _table(s, "B", [("a2", DAY2), ("x2", DAY2), ("n2", None)])
    report = reconcile_ingestion(batch, raw, transformed, rejected, _counts(3, DAY1, DAY2))
    assert report["batch_check"] == {
        "events": 3,
        "in_transformed_data": 2,
        "in_rejected_events": 1,
        "in_both": 0,
        "in_neither": 0,
    }
    assert report["warehouse_totals"]["reconciled"]


def test_a_batch_record_in_neither_or_both_tables_fails(warehouse_session: Any) -> None:
    s = warehouse_session
    raw = _table(s, "RAW", [("a2", DAY2), ("x2", DAY2)])
    batch = _table(s, "B", [("a2", DAY2), ("x2", DAY2)])
    missing = _table(s, "T", [("a2", DAY2)])
    with pytest.raises(ReconciliationError, match="1 are in neither"):
        reconcile_ingestion(batch, raw, missing, _table(s, "R", []), _counts(2, DAY1, DAY2))
    both = _table(s, "R", [("x2", DAY2)])  # x2 also in TRANSFORMED_DATA below
    with pytest.raises(ReconciliationError, match="1 are in both"):
        reconcile_ingestion(
            batch, raw, _table(s, "T", [("a2", DAY2), ("x2", DAY2)]), both, _counts(2, DAY1, DAY2)
        )


def test_a_repeated_record_id_in_a_target_fails(warehouse_session: Any) -> None:
    s = warehouse_session
    batch = _table(s, "B", [("a2", DAY2)])
    doubled = _table(s, "T", [("a2", DAY2), ("a2", DAY2)])
    with pytest.raises(ReconciliationError):
        reconcile_ingestion(batch, batch, doubled, _table(s, "R", []), _counts(1, DAY1, DAY2))


def test_full_refresh_reads_every_row(warehouse_session: Any) -> None:
    s = warehouse_session
    rows = [("a1", DAY1), ("a2", DAY2)]
    batch, transformed = _table(s, "B", rows), _table(s, "T", rows)
    counts = {**_counts(2, DAY1, DAY2), "full_refresh": True}  # watermark_from is ignored
    report = reconcile_ingestion(batch, batch, transformed, _table(s, "R", []), counts)
    assert report["batch_check"]["in_transformed_data"] == 2


def test_the_proof_is_made_without_a_join_when_the_tables_hold_exactly_the_batch(
    warehouse_session: Any, monkeypatch: Any
) -> None:
    """Count and checksum suffice when all is well; a swapped record (same counts) is still caught."""
    from customer_segmentation.pipelines.ingestion import nodes

    s = warehouse_session
    joins: list[int] = []
    by_join = nodes._batch_check_by_join
    monkeypatch.setattr(nodes, "_batch_check_by_join", lambda *a: joins.append(1) or by_join(*a))
    raw = _table(s, "RAW", [("a2", DAY2), ("x2", DAY2)])
    batch = _table(s, "B", [("a2", DAY2), ("x2", DAY2)])
    report = reconcile_ingestion(
        batch, raw, _table(s, "T", [("a2", DAY2)]), _table(s, "R", [("x2", DAY2)]), _counts(2, DAY1, DAY2)
    )
    assert report["batch_check_method"] == "count and checksum" and joins == []
    assert report["batch_check"]["in_transformed_data"] == report["batch_check"]["in_rejected_events"] == 1
    # same counts, one record replaced by a stranger: the checksums differ, the join names the gap
    with pytest.raises(ReconciliationError, match="1 are in neither"):
        reconcile_ingestion(
            batch, raw, _table(s, "T", [("a2", DAY2)]), _table(s, "R", [("zz", DAY2)]), _counts(2, DAY1, DAY2)
        )
    assert joins == [1]


def test_the_batch_digest_from_split_events_is_used_instead_of_a_scan(
    warehouse_session: Any, monkeypatch: Any
) -> None:
    """With split_events' digest of the batch in the counts, the batch is not read again; the digest is
    trusted only as far as it matches the tables (else the joins decide) and stays out of the report."""
    from customer_segmentation.pipelines.ingestion import nodes

    s = warehouse_session
    batch = _table(s, "B", [("a2", DAY2), ("x2", DAY2), ("n2", None)])
    raw = _table(s, "RAW", [("a2", DAY2), ("x2", DAY2), ("n2", None)])
    transformed, rejected = _table(s, "T", [("a2", DAY2), ("n2", None)]), _table(s, "R", [("x2", DAY2)])
    digest = nodes._id_digest(batch, "RECORD_ID")
    scanned: list[str] = []
    real = nodes._id_digest
    monkeypatch.setattr(nodes, "_id_digest", lambda f, c: scanned.append(c) or real(f, c))
    counts = {**_counts(3, DAY1, DAY2), nodes.BATCH_DIGEST: digest}
    report = reconcile_ingestion(batch, raw, transformed, rejected, counts)
    assert scanned == ["T_ID", "R_ID"] and report["batch_check_method"] == "count and checksum"
    assert nodes.BATCH_DIGEST not in report and nodes.BATCH_DIGEST in counts  # the input is not changed
    # a digest that does not match the tables sends the check to the joins (which find nothing wrong here)
    report = reconcile_ingestion(batch, raw, transformed, rejected, {**counts, nodes.BATCH_DIGEST: (3, 1)})
    assert report["batch_check_method"] == "join" and report["batch_check"]["in_neither"] == 0
