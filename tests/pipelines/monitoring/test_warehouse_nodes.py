"""Monitoring on the embedded warehouse: snapshot replacement, migrations and the activation feed."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import numpy as np
import pandas as pd
import pytest

from customer_segmentation.datasets.monitoring import SnapshotWrite, WarehouseTableDataset
from customer_segmentation.errors import InvalidParametersError
from customer_segmentation.pipelines.monitoring.nodes import compute_migrations
from customer_segmentation.pipelines.monitoring.params import MonitoringParams


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
            rows.append(
                (
                    day,
                    f"C{i:03d}",
                    "run",
                    "v1",
                    seg,
                    labels[seg],
                    "Champions",
                    10,
                    2,
                    float(rng.uniform(0, 500)),
                )
            )
    return pd.DataFrame(
        rows,
        columns=[
            "SNAPSHOT_DATE",
            "CUSTOMER_ID",
            "RUN_ID",
            "MODEL_VERSION",
            "SEGMENT_ID",
            "SEGMENT_LABEL",
            "RFM_SEGMENT",
            "RECENCY_DAYS",
            "FREQUENCY",
            "MONETARY",
        ],
    )


def dataset(table: str, mode: str) -> WarehouseTableDataset:
    save_args = {"mode": mode, **({"snapshot_column": "SNAPSHOT_DATE"} if mode == "replace_snapshot" else {})}
    return WarehouseTableDataset(table_name=table, save_args=save_args)


def test_replace_snapshot_never_duplicates_and_applies_retention(warehouse_session: Any) -> None:
    history = dataset("T_HISTORY", "replace_snapshot")
    d1, d2, d3 = date(2026, 1, 1), date(2026, 1, 31), date(2026, 3, 2)
    frame = history_frame(0, [d1, d2, d3])
    for day in (d1, d2, d2, d3):  # d2 written twice
        history.save(frame[frame.SNAPSHOT_DATE == day])
    rows = warehouse_session.sql(
        "SELECT SNAPSHOT_DATE, COUNT(*) FROM T_HISTORY GROUP BY 1 ORDER BY 1"
    ).collect()
    assert [(r[0], r[1]) for r in rows] == [(d, int((frame.SNAPSHOT_DATE == d).sum())) for d in (d1, d2, d3)]
    # a rerun of d3 with other rows replaces it, and retention drops what is older than 40 days
    changed = frame[frame.SNAPSHOT_DATE == d3].head(10)
    history.save(SnapshotWrite(changed, keep_after=d3 - timedelta(days=40)))
    rows = warehouse_session.sql(
        "SELECT SNAPSHOT_DATE, COUNT(*) FROM T_HISTORY GROUP BY 1 ORDER BY 1"
    ).collect()
    assert [(r[0], r[1]) for r in rows] == [(d2, int((frame.SNAPSHOT_DATE == d2).sum())), (d3, 10)]
    # no scratch table left behind
    assert not warehouse_session.sql("SHOW TABLES LIKE 'T_HISTORY__STAGE%'").collect()


def test_nothing_new_creates_a_missing_table_and_leaves_an_existing_one(warehouse_session: Any) -> None:
    """SnapshotWrite(only_if_missing=True): no rows to record; the table is created when missing, else untouched."""
    created = dataset("T_OUTCOMES_NEW", "replace_snapshot")
    none = warehouse_session.sql("SELECT CAST('2026-01-01' AS DATE) AS SNAPSHOT_DATE, 1 AS N").limit(0)
    created.save(SnapshotWrite(none, only_if_missing=True))
    assert warehouse_session.sql("SELECT COUNT(*) FROM T_OUTCOMES_NEW").collect()[0][0] == 0
    history = dataset("T_OUTCOMES", "replace_snapshot")
    frame = history_frame(2, [date(2026, 1, 1)])
    history.save(frame)
    # an existing table keeps its rows, and nothing is written to it (no stage, no transaction)
    with warehouse_session.query_history() as sent:
        history.save(SnapshotWrite(frame.head(0), only_if_missing=True))
    assert not [
        q.sql_text
        for q in sent.queries
        if q.sql_text.lstrip().upper().startswith(("CREATE", "DELETE", "INSERT", "BEGIN"))
    ]
    assert warehouse_session.sql("SELECT COUNT(*) FROM T_OUTCOMES").collect()[0][0] == len(frame)
    assert not warehouse_session.sql("SHOW TABLES LIKE 'T_OUTCOMES__STAGE%'").collect()


def test_changed_columns_are_refused_without_touching_the_table(warehouse_session: Any) -> None:
    history = dataset("T_H2", "replace_snapshot")
    frame = history_frame(1, [date(2026, 1, 1)])
    history.save(frame)
    with pytest.raises(Exception, match="columns differ"):
        history.save(frame.drop(columns=["MONETARY"]))
    assert warehouse_session.sql("SELECT COUNT(*) FROM T_H2").collect()[0][0] == len(frame)


def test_new_columns_are_added_and_old_rows_keep_null(warehouse_session: Any) -> None:
    # SEGMENT_HISTORY gained P_ALIVE and CLV (issue 21): a warehouse written before keeps its snapshots
    history = dataset("T_H4", "replace_snapshot")
    d1, d2 = date(2026, 1, 1), date(2026, 1, 2)
    old = history_frame(3, [d1])
    history.save(old)
    new = history_frame(3, [d2]).assign(P_ALIVE=0.5, CLV=12.25)
    history.save(new)
    rows = warehouse_session.sql(
        "SELECT SNAPSHOT_DATE, COUNT(*), COUNT(P_ALIVE), SUM(CLV) FROM T_H4 GROUP BY 1 ORDER BY 1"
    ).collect()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (d1, len(old), 0, None),
        (d2, len(new), len(new), 12.25 * len(new)),
    ]
    # and a rerun of the new day replaces it (no duplicate, columns unchanged)
    history.save(new)
    assert warehouse_session.sql("SELECT COUNT(*) FROM T_H4").collect()[0][0] == len(old) + len(new)


def test_migrations_agree_with_pandas(warehouse_session: Any) -> None:
    d1, d2 = date(2026, 1, 1), date(2026, 2, 1)
    frame = history_frame(2, [d1, d2])
    dataset("T_H3", "replace_snapshot").save(frame)
    history = warehouse_session.table("T_H3")
    info = {"snapshot_date": d2.isoformat(), "previous_snapshot_date": d1.isoformat(), "model_version": "v1"}
    got = compute_migrations(history, info).data.to_pandas()

    prev, cur = frame[frame.SNAPSHOT_DATE == d1], frame[frame.SNAPSHOT_DATE == d2]
    both = cur.merge(prev, on="CUSTOMER_ID", how="outer", suffixes=("", "_P"))
    both["FROM"] = both["SEGMENT_LABEL_P"].fillna("new")
    both["TO"] = both["SEGMENT_LABEL"].fillna("gone")
    expected = both.groupby(["FROM", "TO"]).agg(
        N=("CUSTOMER_ID", "size"), REV=("MONETARY", lambda s: s.fillna(0).sum())
    )
    got_idx = got.set_index(["FROM_SEGMENT", "TO_SEGMENT"]).sort_index()
    assert got_idx["CUSTOMERS"].to_dict() == expected["N"].to_dict()
    np.testing.assert_allclose(
        got_idx["NET_REVENUE"].to_numpy(), expected["REV"].round(2).to_numpy(), atol=0.011
    )
    # every current customer is counted once: present in both + new
    in_both = len(set(cur.CUSTOMER_ID) & set(prev.CUSTOMER_ID))
    new = len(set(cur.CUSTOMER_ID) - set(prev.CUSTOMER_ID))
    assert got.loc[got.TO_SEGMENT != "gone", "CUSTOMERS"].sum() == in_both + new == len(cur)


def test_first_snapshot_is_all_new(warehouse_session: Any) -> None:
    d1 = date(2026, 1, 1)
    frame = history_frame(3, [d1])
    dataset("T_H4", "replace_snapshot").save(frame)
    info = {"snapshot_date": d1.isoformat(), "previous_snapshot_date": None, "model_version": "v1"}
    got = compute_migrations(warehouse_session.table("T_H4"), info).data.to_pandas()
    assert set(got["FROM_SEGMENT"]) == {"new"} and got["CUSTOMERS"].sum() == len(frame)


def test_drift_measured_in_the_warehouse_matches_pandas(warehouse_session: Any) -> None:
    import json

    from customer_segmentation.drift import proportions, psi
    from customer_segmentation.pipelines.monitoring.nodes import measure_drift
    from customer_segmentation.pipelines.prediction.nodes import assign_segments
    from customer_segmentation.pipelines.training.nodes import fit_segmentation_model
    from tests.pipelines.training.test_nodes import PARAMS, planted_customers

    sample = planted_customers(100, seed=1)
    model = fit_segmentation_model(sample, {"k": 3, "source": "t"}, PARAMS, {"run_id": "m"})
    today = planted_customers(120, seed=2).drop(columns=["GROUP"])
    today.loc[today.index % 3 == 0, "RECENCY_DAYS"] += 90  # a third of the customers stopped buying
    # text columns (CUSTOMER_ID, RFM_SEGMENT) as VARCHAR, the features as DOUBLE
    columns = ", ".join(
        f"{c} {'DOUBLE' if pd.api.types.is_numeric_dtype(today[c]) else 'VARCHAR'}" for c in today.columns
    )
    warehouse_session.sql(f"CREATE OR REPLACE TABLE T_TODAY ({columns})").collect()
    warehouse_session.write_pandas(today, "T_TODAY", auto_create_table=False)
    scored = assign_segments(warehouse_session.table("T_TODAY"), model)
    info = {"snapshot_date": "2026-02-01", "run_id": "r"}
    row = measure_drift(
        scored, model, info, MonitoringParams(), {"run_id": "r", "started_at": "2026-02-01T06:00:00"}
    ).iloc[0]

    feature_psi = json.loads(row["FEATURE_PSI"])
    for feature, spec in model.reference()["bins"].items():
        expected = psi(
            spec["proportions"], proportions(today[feature].fillna(0).to_numpy(float), spec["edges"])
        )
        assert feature_psi[feature] == pytest.approx(expected, abs=1e-5), feature
    assert row["MAX_PSI_FEATURE"] == "RECENCY_DAYS" and row["MAX_PSI"] > 0.1
    positions = model.predict(today)
    segments = json.loads(row["SEGMENTS"])
    for pos, seg_id in enumerate(model.ids()):
        assert segments[str(seg_id)]["share_now"] == pytest.approx((positions == pos).mean(), abs=1e-6)
    distances = np.linalg.norm(model.transform(today) - model.centroids[positions], axis=1)
    assert row["MEAN_DISTANCE"] == pytest.approx(distances.mean(), rel=1e-6)
    assert row["DISTANCE_RATIO"] == pytest.approx(
        distances.mean() / model.reference()["overall_mean_distance"], rel=1e-6
    )
    assert row["STATUS"] in ("watch", "retrain_recommended") and row["REASONS"]


def test_snapshot_uses_the_reference_date_and_retention_keeps_the_previous_snapshot(
    warehouse_session: Any,
) -> None:
    from customer_segmentation.pipelines.monitoring.nodes import snapshot_segments

    warehouse_session.sql(
        "CREATE OR REPLACE TABLE T_PROCESSED AS SELECT 'C1' AS CUSTOMER_ID, CAST('2026-03-01' AS DATE) AS REFERENCE_DATE, "
        "'run-2' AS RUN_ID, 'v2' AS MODEL_VERSION, 7 AS SEGMENT_ID, 'Champions' AS SEGMENT_LABEL, "
        "'Champions' AS RFM_SEGMENT, 3 AS RECENCY_DAYS, 12 AS FREQUENCY, 1234.5 AS MONETARY"
    ).collect()
    history = history_frame(4, [date(2025, 1, 1), date(2026, 1, 30)])
    dataset("T_H5", "replace_snapshot").save(history)
    write, info = snapshot_segments(
        warehouse_session.table("T_PROCESSED"),
        warehouse_session.table("T_H5"),
        MonitoringParams(history_retention_days=10),
    )
    assert info["snapshot_date"] == "2026-03-01" and info["previous_snapshot_date"] == "2026-01-30"
    assert write.keep_after == date(2026, 1, 30)  # not 2026-02-19: the previous snapshot stays
    dataset("T_H5", "replace_snapshot").save(write)
    rows = warehouse_session.sql("SELECT SNAPSHOT_DATE, COUNT(*) FROM T_H5 GROUP BY 1 ORDER BY 1").collect()
    assert [r[0] for r in rows] == [date(2026, 1, 30), date(2026, 3, 1)] and rows[1][1] == 1
    with pytest.raises(InvalidParametersError, match="monitoring.history_retention_days"):
        MonitoringParams.of(history_retention_days=0)


def test_snapshot_takes_the_outcome_prediction_from_customer_value_of_the_same_date(
    warehouse_session: Any,
) -> None:
    """OUTCOME_* come from CUSTOMER_VALUE (no longer in PROCESSED_DATA), matched on customer and reference
    date: another day's row, a customer without a value and an empty CUSTOMER_VALUE give NULL; no row of
    PROCESSED_DATA is doubled or dropped by a customer with rows of several dates."""
    from customer_segmentation.pipelines.monitoring.nodes import snapshot_segments

    warehouse_session.sql(
        "CREATE OR REPLACE TABLE T_PROC_V AS SELECT * FROM VALUES "
        "('C1', '2026-03-01'::DATE, 'run-1', 'v1', 1, 'Champions', 'Champions', 3, 12, 1234.5, 0.9, 2.5, 300.0), "
        "('C2', '2026-03-01'::DATE, 'run-1', 'v1', 2, 'Lost', 'Lost', 300, 1, 20.0, 0.1, 0.2, 4.0), "
        "('C3', '2026-03-01'::DATE, 'run-1', 'v1', 2, 'Lost', 'Lost', 200, 1, 30.0, 0.2, 0.3, 5.0) "
        "AS t(CUSTOMER_ID, REFERENCE_DATE, RUN_ID, MODEL_VERSION, SEGMENT_ID, SEGMENT_LABEL, RFM_SEGMENT, "
        "RECENCY_DAYS, FREQUENCY, MONETARY, P_ALIVE, EXPECTED_PURCHASES, CLV)"
    ).collect()
    # C1: today's row and an older one; C2: only another day's row; C3: none
    warehouse_session.sql(
        "CREATE OR REPLACE TABLE T_VALUE_V AS SELECT * FROM VALUES "
        "('C1', '2026-03-01'::DATE, 1.25, 150.0, 180), ('C1', '2026-02-28'::DATE, 9.0, 9.0, 90), "
        "('C2', '2026-02-28'::DATE, 7.0, 7.0, 180) "
        "AS t(CUSTOMER_ID, REFERENCE_DATE, OUTCOME_EXPECTED_PURCHASES, OUTCOME_EXPECTED_SPEND, OUTCOME_DAYS)"
    ).collect()
    dataset("T_H_V", "replace_snapshot").save(history_frame(5, [date(2026, 1, 30)]))
    columns = [
        "CUSTOMER_ID",
        "P_ALIVE",
        "CLV",
        *[f"OUTCOME_{c}" for c in ("EXPECTED_PURCHASES", "EXPECTED_SPEND", "DAYS")],
    ]
    read = f"SELECT {', '.join(columns)} FROM T_H_V WHERE SNAPSHOT_DATE = '2026-03-01' ORDER BY CUSTOMER_ID"
    params = MonitoringParams()
    for value, expected in (
        (
            warehouse_session.table("T_VALUE_V"),
            [
                ("C1", 0.9, 300.0, 1.25, 150.0, 180),
                ("C2", 0.1, 4.0, None, None, None),
                ("C3", 0.2, 5.0, None, None, None),
            ],
        ),
        (
            None,
            [
                ("C1", 0.9, 300.0, None, None, None),
                ("C2", 0.1, 4.0, None, None, None),
                ("C3", 0.2, 5.0, None, None, None),
            ],
        ),
        (  # a CUSTOMER_VALUE without the outcome columns (written before they existed)
            warehouse_session.table("T_VALUE_V").select("CUSTOMER_ID", "REFERENCE_DATE"),
            [
                ("C1", 0.9, 300.0, None, None, None),
                ("C2", 0.1, 4.0, None, None, None),
                ("C3", 0.2, 5.0, None, None, None),
            ],
        ),
    ):
        write, info = snapshot_segments(
            warehouse_session.table("T_PROC_V"), warehouse_session.table("T_H_V"), params, value
        )
        assert info["customers"] == 3
        dataset("T_H_V", "replace_snapshot").save(write)
        rows = [tuple(r) for r in warehouse_session.sql(read).collect()]
        assert rows == expected


def test_bin_shares_in_sql_equal_numpy_on_edges_ties_and_nulls(warehouse_session: Any) -> None:
    from customer_segmentation.drift import proportions
    from customer_segmentation.pipelines.monitoring.nodes import _bin_counts

    # values exactly on the edges, heavy ties, NULLs (counted as 0), below and above every edge
    values = [None, None, -5.0, 0.0, 0.0, 1.0, 1.0, 1.0, 2.5, 3.0, 3.0, 7.0, 7.0, 7.0, 7.0, 99.0]
    edges = {"X": {"edges": [0.0, 1.0, 3.0, 7.0]}, "Y": {"edges": [2.0]}}
    frame = pd.DataFrame({"X": values, "Y": [v if v is None else -v for v in values]})
    warehouse_session.sql("CREATE OR REPLACE TABLE T_BINS (X DOUBLE, Y DOUBLE)").collect()
    warehouse_session.write_pandas(frame, "T_BINS", auto_create_table=False)
    shares = _bin_counts(warehouse_session.table("T_BINS"), edges, len(frame))
    for feature, spec in edges.items():
        expected = proportions(frame[feature].fillna(0).to_numpy(float), spec["edges"])
        assert shares[feature] == pytest.approx(expected), feature
    with pytest.raises(ValueError, match="sorted and distinct"):
        _bin_counts(warehouse_session.table("T_BINS"), {"X": {"edges": [3.0, 1.0]}}, len(frame))


def test_a_catalog_entry_with_its_own_schema_writes_there_scratch_table_included(
    warehouse_session: Any,
) -> None:
    """``schema: OTHER`` in the catalog: the pandas scratch table and the rows go there, not to PUBLIC."""
    from kedro.io import DataCatalog

    warehouse_session.sql("CREATE SCHEMA IF NOT EXISTS SEGMENTATION.OTHER").collect()
    catalog = DataCatalog.from_config(
        {
            "flows": {
                "type": "customer_segmentation.datasets.WarehouseTableDataset",
                "table_name": "T_FLOWS",
                "schema": "OTHER",
                "save_args": {"mode": "replace_snapshot", "snapshot_column": "SNAPSHOT_DATE"},
            }
        }
    )
    frame = history_frame(4, [date(2026, 1, 1)])
    catalog.save("flows", frame)
    catalog.save("flows", SnapshotWrite(frame.head(5)))  # the transactional path, scratch table first
    other = warehouse_session.sql("SELECT COUNT(*) FROM SEGMENTATION.OTHER.T_FLOWS").collect()[0][0]
    assert other == 5
    tables = {
        (r[0], r[1])
        for r in warehouse_session.sql(
            "SELECT TABLE_SCHEMA, TABLE_NAME FROM SEGMENTATION.INFORMATION_SCHEMA.TABLES WHERE TABLE_NAME LIKE 'T_FLOWS%'"
        ).collect()
    }
    assert tables == {("OTHER", "T_FLOWS")}  # nothing in PUBLIC, no scratch table left


def test_segment_shares_chart_stacks_each_segment_and_fills_absent_ones(warehouse_session: Any) -> None:
    """One stacked trace per segment; each snapshot's shares sum to 1; a segment absent from a snapshot is 0."""
    from customer_segmentation.pipelines.monitoring.nodes import plot_segment_shares

    warehouse_session.sql(
        "CREATE OR REPLACE TABLE T_SHARES AS SELECT * FROM VALUES "
        "('2026-01-01'::DATE, 'C1', 'A'), ('2026-01-01'::DATE, 'C2', 'A'), ('2026-01-01'::DATE, 'C3', 'B'), "
        "('2026-01-02'::DATE, 'C1', 'A'), ('2026-01-02'::DATE, 'C2', 'C') AS t(SNAPSHOT_DATE, CUSTOMER_ID, SEGMENT_LABEL)"
    ).collect()
    fig = plot_segment_shares(warehouse_session.table("T_SHARES"))
    traces = {t.name: list(t.y) for t in fig.data}
    assert {t.stackgroup for t in fig.data} == {"shares"} and [len(t.x) for t in fig.data] == [2, 2, 2]
    assert traces == {
        "A": pytest.approx([2 / 3, 0.5]),
        "B": pytest.approx([1 / 3, 0.0]),
        "C": pytest.approx([0.0, 0.5]),
    }
