"""Monitoring on the embedded warehouse: snapshot replacement, migrations and the activation feed."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.datasets.monitoring import SnapshotWrite, WarehouseTableDataset
from customer_segmentation.pipelines.monitoring.nodes import compute_migrations, segment_changes


def history_frame(seed: int, days: list[date], n: int = 60) -> pd.DataFrame:
    """Random segment histories: customers come and go, some change segment."""
    rng = np.random.default_rng(seed)
    labels = ["A", "B", "C"]
    rows = []
    for day in days:
        for i in range(n):
            if rng.random() < 0.15:
                continue  # absent from this snapshot
            seg = int(rng.integers(0, 3))
            rows.append((day, f"C{i:03d}", "run", "v1", seg, labels[seg], "Champions", 10, 2, float(rng.uniform(0, 500))))
    return pd.DataFrame(rows, columns=["SNAPSHOT_DATE", "CUSTOMER_ID", "RUN_ID", "MODEL_VERSION", "SEGMENT_ID",
                                       "SEGMENT_LABEL", "RFM_SEGMENT", "RECENCY_DAYS", "FREQUENCY", "MONETARY"])


def dataset(table: str, mode: str) -> WarehouseTableDataset:
    save_args = {"mode": mode, **({"snapshot_column": "SNAPSHOT_DATE"} if mode == "replace_snapshot" else {})}
    return WarehouseTableDataset(table_name=table, save_args=save_args)


def test_replace_snapshot_never_duplicates_and_applies_retention(warehouse_session: Any) -> None:
    history = dataset("T_HISTORY", "replace_snapshot")
    d1, d2, d3 = date(2026, 1, 1), date(2026, 1, 31), date(2026, 3, 2)
    frame = history_frame(0, [d1, d2, d3])
    for day in (d1, d2, d2, d3):  # d2 written twice
        history.save(frame[frame.SNAPSHOT_DATE == day])
    rows = warehouse_session.sql("SELECT SNAPSHOT_DATE, COUNT(*) FROM T_HISTORY GROUP BY 1 ORDER BY 1").collect()
    assert [(r[0], r[1]) for r in rows] == [(d, int((frame.SNAPSHOT_DATE == d).sum())) for d in (d1, d2, d3)]
    # a rerun of d3 with other rows replaces it, and retention drops what is older than 40 days
    changed = frame[frame.SNAPSHOT_DATE == d3].head(10)
    history.save(SnapshotWrite(changed, keep_after=d3 - timedelta(days=40)))
    rows = warehouse_session.sql("SELECT SNAPSHOT_DATE, COUNT(*) FROM T_HISTORY GROUP BY 1 ORDER BY 1").collect()
    assert [(r[0], r[1]) for r in rows] == [(d2, int((frame.SNAPSHOT_DATE == d2).sum())), (d3, 10)]
    # no scratch table left behind
    assert not warehouse_session.sql("SHOW TABLES LIKE 'T_HISTORY__STAGE%'").collect()


def test_changed_columns_are_refused_without_touching_the_table(warehouse_session: Any) -> None:
    history = dataset("T_H2", "replace_snapshot")
    frame = history_frame(1, [date(2026, 1, 1)])
    history.save(frame)
    with pytest.raises(Exception, match="columns differ"):
        history.save(frame.drop(columns=["MONETARY"]))
    assert warehouse_session.sql("SELECT COUNT(*) FROM T_H2").collect()[0][0] == len(frame)


def test_migrations_and_changes_agree_with_pandas(warehouse_session: Any) -> None:
    d1, d2 = date(2026, 1, 1), date(2026, 2, 1)
    frame = history_frame(2, [d1, d2])
    dataset("T_H3", "replace_snapshot").save(frame)
    history = warehouse_session.table("T_H3")
    info = {"snapshot_date": d2.isoformat(), "previous_snapshot_date": d1.isoformat(), "model_version": "v1"}
    got = compute_migrations(history, info).to_pandas()

    prev, cur = frame[frame.SNAPSHOT_DATE == d1], frame[frame.SNAPSHOT_DATE == d2]
    both = cur.merge(prev, on="CUSTOMER_ID", how="outer", suffixes=("", "_P"))
    both["FROM"] = both["SEGMENT_LABEL_P"].fillna("new")
    both["TO"] = both["SEGMENT_LABEL"].fillna("gone")
    expected = both.groupby(["FROM", "TO"]).agg(N=("CUSTOMER_ID", "size"), REV=("MONETARY", lambda s: s.fillna(0).sum()))
    got_idx = got.set_index(["FROM_SEGMENT", "TO_SEGMENT"]).sort_index()
    assert got_idx["CUSTOMERS"].to_dict() == expected["N"].to_dict()
    np.testing.assert_allclose(got_idx["NET_REVENUE"].to_numpy(), expected["REV"].round(2).to_numpy(), atol=0.011)
    # every current customer is counted once: present in both + new
    in_both = len(set(cur.CUSTOMER_ID) & set(prev.CUSTOMER_ID))
    new = len(set(cur.CUSTOMER_ID) - set(prev.CUSTOMER_ID))
    assert got.loc[got.TO_SEGMENT != "gone", "CUSTOMERS"].sum() == in_both + new == len(cur)

    changes = segment_changes(history, info).to_pandas()
    merged = cur.merge(prev, on="CUSTOMER_ID", suffixes=("", "_P"))
    assert set(changes["CUSTOMER_ID"]) == set(merged.loc[merged.SEGMENT_LABEL != merged.SEGMENT_LABEL_P, "CUSTOMER_ID"])
    assert changes["CUSTOMER_ID"].is_unique and (changes["FROM_SEGMENT"] != changes["TO_SEGMENT"]).all()


def test_first_snapshot_is_all_new(warehouse_session: Any) -> None:
    d1 = date(2026, 1, 1)
    frame = history_frame(3, [d1])
    dataset("T_H4", "replace_snapshot").save(frame)
    info = {"snapshot_date": d1.isoformat(), "previous_snapshot_date": None, "model_version": "v1"}
    got = compute_migrations(warehouse_session.table("T_H4"), info).to_pandas()
    assert set(got["FROM_SEGMENT"]) == {"new"} and got["CUSTOMERS"].sum() == len(frame)
    assert segment_changes(warehouse_session.table("T_H4"), info).count() == 0
