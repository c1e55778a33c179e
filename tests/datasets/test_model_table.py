"""Model versions and run evidence in warehouse tables: exact, idempotent, pruned, atomic."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import pytest
from kedro.io.core import DatasetError

from customer_segmentation.datasets import model_table
from customer_segmentation.datasets.model_table import (
    EvidenceTableDataset,
    ModelVersionWrite,
    SegmentationModelTableDataset,
    versions_to_prune,
)
from customer_segmentation.model import SegmentationModel, active_version, load_version
from customer_segmentation.pipelines.prediction.nodes import assign_segments
from customer_segmentation.pipelines.reporting.nodes import plot_elbow
from customer_segmentation.pipelines.training.nodes import evaluate_k_range, fit_segmentation_model
from customer_segmentation.pipelines.training.params import TrainingParams
from tests.conftest import PROJECT_ROOT
from tests.pipelines.prediction.test_nodes import random_customers, upload
from tests.pipelines.training.test_nodes import PARAMS, planted_customers


@pytest.fixture(scope="module")
def trained() -> tuple[SegmentationModel, pd.DataFrame]:
    sample = planted_customers()
    model = fit_segmentation_model(sample, {"k": 4, "source": "test"}, PARAMS, {"run_id": "v-base"})
    return model, evaluate_k_range(sample, PARAMS)


def write_for(
    model: SegmentationModel, k_selection: pd.DataFrame, version: str, day: int, **kwargs: Any
) -> ModelVersionWrite:
    record = model.to_record()
    record.update(version=version, trained_at=f"2026-01-{day:02d}T10:00:00")
    record["metrics"] = {"k_selection": k_selection.to_dict(orient="records"), "silhouette": float("nan")}
    return ModelVersionWrite(record=record, run_id=version, **kwargs)


def dataset() -> SegmentationModelTableDataset:
    return SegmentationModelTableDataset(
        table_name="SEGMENTATION_MODELS", credentials={"database": "SEGMENTATION", "schema": "PUBLIC"}
    )


def counts(query: Any) -> tuple[int, int, int]:
    return tuple(
        query(f"SELECT COUNT(*) FROM {t}")[0][0]
        for t in ("SEGMENTATION_MODELS", "MODEL_K_SELECTION", "MODEL_SEGMENTS")
    )


def test_save_load_is_exact_and_scores_identically(warehouse_session: Any, query: Any, trained: Any) -> None:
    model, k_selection = trained
    ds = dataset()
    assert ds.load().empty  # no table yet: empty, and the node says how to train
    ds.save(write_for(model, k_selection, "v1", 1))
    versions = ds.load()
    assert list(versions["version"]) == ["v1"] and list(versions["status"]) == ["READY"]
    restored = load_version(versions, active_version(versions))
    for name in ("means", "scales", "centroids"):
        assert np.array_equal(getattr(model, name).view(np.int64), getattr(restored, name).view(np.int64))
    assert restored.trained_at == "2026-01-01T10:00:00" and restored.labels == model.labels
    customers = upload(warehouse_session, random_customers(500), "CUSTOMERS")
    columns = ["CUSTOMER_ID", "SEGMENT_ID", "SEGMENT_LABEL", "DISTANCE_TO_CENTROID"]
    original = assign_segments(customers, model).select(columns).sort("CUSTOMER_ID").to_pandas()
    reloaded = assign_segments(customers, restored).select(columns).sort("CUSTOMER_ID").to_pandas()
    pd.testing.assert_frame_equal(original, reloaded)
    # the evidence rows, as a BI tool reads them
    rows = query("SELECT K, INERTIA, IS_CHOSEN FROM MODEL_K_SELECTION WHERE MODEL_VERSION = 'v1' ORDER BY K")
    assert [r[0] for r in rows] == k_selection["k"].tolist()
    assert [r[1] for r in rows] == k_selection["inertia"].tolist()
    assert [r[0] for r in rows if r[2]] == [4]
    segments = query("SELECT SEGMENT_ID, LABEL, CUSTOMERS, STATS FROM MODEL_SEGMENTS ORDER BY SEGMENT_ID")
    assert [r[1] for r in segments] == model.labels
    assert [r[2] for r in segments] == [s["customers"] for s in model.segment_stats]
    assert json.loads(segments[0][3])["mean_frequency"] == model.segment_stats[0]["mean_frequency"]


def test_a_version_can_be_inspected_with_sql_alone(warehouse_session: Any, query: Any, trained: Any) -> None:
    model, k_selection = trained
    dataset().save(write_for(model, k_selection, "v1", 1))
    # the queries of docs/model-registry.md (standard Snowflake semi-structured SQL)
    row = query(
        "SELECT VERSION, K, PARSE_JSON(LABELS)[0]::VARCHAR AS FIRST_LABEL, PARSE_JSON(CENTROIDS)[1][2]::FLOAT AS C12, "
        "PARSE_JSON(METRICS):silhouette::FLOAT AS SILHOUETTE FROM SEGMENTATION_MODELS WHERE VERSION = 'v1'"
    )[0]
    assert (row[0], row[1], row[2]) == ("v1", 4, model.labels[0])
    assert row[3] == model.centroids[1, 2]
    assert row[4] is None  # NaN is stored as JSON null, a SQL NULL once cast
    flattened = query(
        "SELECT f.index AS SEGMENT_ID, f.value::VARCHAR AS LABEL FROM SEGMENTATION_MODELS m, "
        "LATERAL FLATTEN(input => PARSE_JSON(m.LABELS)) f WHERE m.VERSION = 'v1' ORDER BY f.index"
    )
    assert [r[1] for r in flattened] == model.labels


def test_saving_the_same_version_again_replaces_it(warehouse_session: Any, query: Any, trained: Any) -> None:
    model, k_selection = trained
    ds = dataset()
    ds.save(write_for(model, k_selection, "v1", 1))
    first = counts(query)
    ds.save(write_for(model, k_selection, "v1", 1))
    assert counts(query) == first == (1, len(k_selection), model.k)


def test_old_versions_are_pruned_oldest_first_but_never_the_pinned_one(
    warehouse_session: Any, query: Any, trained: Any
) -> None:
    model, k_selection = trained
    ds = dataset()
    for day in range(1, 6):
        ds.save(write_for(model, k_selection, f"v{day}", day, keep_versions=2, protect=("v1",)))
    assert list(ds.load()["version"]) == ["v5", "v4", "v1"]
    assert query("SELECT DISTINCT MODEL_VERSION FROM MODEL_K_SELECTION ORDER BY 1") == query(
        "SELECT DISTINCT MODEL_VERSION FROM MODEL_SEGMENTS ORDER BY 1"
    )
    assert [r[0] for r in query("SELECT DISTINCT MODEL_VERSION FROM MODEL_SEGMENTS ORDER BY 1")] == [
        "v1",
        "v4",
        "v5",
    ]


def test_pruning_rules() -> None:
    stored = [("v5", "RETIRED"), ("v4", "RETIRED"), ("v3", "READY"), ("v2", "READY"), ("v1", "READY")]
    # keep 1: v5 is the newest; v3 is active (newest READY); v1 is pinned
    assert versions_to_prune(stored, 1, ("v1",)) == ["v2", "v4"]
    assert versions_to_prune(stored, 10) == []


def test_a_crash_mid_save_leaves_the_previous_state(
    warehouse_session: Any, query: Any, trained: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    model, k_selection = trained
    ds = dataset()
    ds.save(write_for(model, k_selection, "v1", 1))
    before = counts(query)
    original = model_table._insert_rows

    def crash_on_segments(session: Any, fqn: str, columns: Any, rows: Any) -> None:
        if fqn.endswith("MODEL_SEGMENTS"):
            raise RuntimeError("connection lost")
        original(session, fqn, columns, rows)

    monkeypatch.setattr(model_table, "_insert_rows", crash_on_segments)
    with pytest.raises(DatasetError, match="connection lost"):
        ds.save(write_for(model, k_selection, "v2", 2, keep_versions=1))
    assert counts(query) == before  # no v2 row, no v2 evidence, v1 not pruned
    assert list(ds.load()["version"]) == ["v1"]


def test_save_refuses_other_objects(warehouse_session: Any, trained: Any) -> None:
    with pytest.raises(DatasetError, match="ModelVersionWrite"):
        dataset().save(trained[0])


def evidence() -> EvidenceTableDataset:
    return EvidenceTableDataset(
        table_name="SEGMENT_SUMMARY",
        credentials={"database": "SEGMENTATION", "schema": "PUBLIC"},
        save_args={"key_columns": ["RUN_ID"]},
    )


def test_evidence_rows_are_replaced_by_key_and_new_columns_flow_through(
    warehouse_session: Any, query: Any
) -> None:
    ds = evidence()
    frame = pd.DataFrame(
        {
            "SEGMENT_ID": [0, 1],
            "SEGMENT_LABEL": ["a", "b"],
            "REVENUE": [1.5, float("nan")],
            "RUN_ID": "r1",
            "SCORED_AT": pd.Timestamp("2026-03-01 07:00:00"),
        }
    )
    ds.save(frame)
    ds.save(frame)  # same run again: replaced, not doubled
    ds.save(frame.assign(RUN_ID="r2", FAITHFULNESS=[0.9, 0.8]))  # a new field from a newer summary
    ds.save(frame.assign(RUN_ID="r2", FAITHFULNESS=[0.9, 0.8]))  # same session: the column is known now
    rows = query(
        "SELECT RUN_ID, SEGMENT_ID, REVENUE, FAITHFULNESS, SCORED_AT FROM SEGMENT_SUMMARY ORDER BY RUN_ID, SEGMENT_ID"
    )
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("r1", 0, 1.5, None),
        ("r1", 1, None, None),
        ("r2", 0, 1.5, 0.9),
        ("r2", 1, None, 0.8),
    ]
    assert str(rows[0][4]) == "2026-03-01 07:00:00"
    with pytest.raises(DatasetError, match="RUN_ID"):
        ds.save(frame.drop(columns="RUN_ID"))


def test_the_documented_queries_run(warehouse_session: Any, query: Any, trained: Any) -> None:
    model, k_selection = trained
    dataset().save(write_for(model, k_selection, "v1", 1))
    dataset().save(write_for(model, k_selection, "v2", 2))
    evidence().save(
        pd.DataFrame(
            {
                "SEGMENT_ID": [0],
                "SEGMENT_LABEL": ["a"],
                "CUSTOMERS": [3],
                "CUSTOMER_SHARE": [1.0],
                "REVENUE_SHARE": [1.0],
                "MODEL_VERSION": ["v2"],
                "RUN_ID": ["r"],
                "SCORED_AT": [pd.Timestamp("2026-01-02")],
            }
        )
    )
    doc = (PROJECT_ROOT / "docs" / "model-registry.md").read_text()
    sql = doc.split("## Inspecting with SQL alone", 1)[1].split("```sql", 1)[1].split("```", 1)[0]
    statements = [
        "\n".join(line for line in part.splitlines() if not line.strip().startswith("--")).strip()
        for part in sql.replace("<version>", "v1").split(";")
    ]
    results = [query(statement) for statement in statements if statement]
    assert len(results) == 7
    assert [r[0] for r in results[0]] == ["v2", "v1"] and results[0][0][4] is None  # NaN silhouette -> NULL
    assert [r[1] for r in results[1]] == model.labels
    assert results[2][0][0] == model.centroids[1, 2]
    assert len(results[3]) == len(k_selection) and len(results[4]) == model.k and len(results[5]) == 1
    assert list(dataset().load()["status"]) == ["READY", "RETIRED"]


def test_charts_can_be_rebuilt_from_the_k_selection_table(warehouse_session: Any, trained: Any) -> None:
    model, k_selection = trained
    dataset().save(write_for(model, k_selection, "v1", 1))
    stored = (
        warehouse_session.table("MODEL_K_SELECTION")
        .sort("K")
        .to_pandas()
        .rename(columns=str.lower)
        .drop(columns=["model_version", "is_chosen"])
    )
    stored["k"] = stored["k"].astype(int)
    choice = {"k": 4, "source": "test"}
    assert plot_elbow(stored, choice).to_json() == plot_elbow(k_selection, choice).to_json()


def test_evidence_rows_beyond_one_statement_are_all_written(
    warehouse_session: Any, query: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(model_table, "MAX_BINDS_PER_STATEMENT", 7)  # 3 columns: 2 rows per INSERT
    frame = pd.DataFrame({"RUN_ID": "r", "SEGMENT_ID": range(5), "SHARE": [0.1, 0.2, 0.3, 0.15, 0.25]})
    evidence().save(frame)
    rows = query("SELECT SEGMENT_ID, SHARE FROM SEGMENT_SUMMARY ORDER BY SEGMENT_ID")
    assert [(r[0], r[1]) for r in rows] == list(zip(range(5), [0.1, 0.2, 0.3, 0.15, 0.25]))
    with pytest.raises(DatasetError, match="at most"):
        EvidenceTableDataset(
            table_name="SEGMENT_SUMMARY",
            credentials={"database": "SEGMENTATION", "schema": "PUBLIC"},
            save_args={"key_columns": ["RUN_ID"]},
            max_rows=3,
        ).save(frame)


def test_stable_ids_and_drift_reference_come_back_from_the_table(query: Any, warehouse_session: Any) -> None:
    """A retrain aligned to the model read back from the warehouse (a fresh container) keeps every id and label."""
    from customer_segmentation.model import json_safe
    from customer_segmentation.segment_identity import align_segment_ids

    sample = planted_customers()

    def fit(k: int, seed: int, version: str) -> SegmentationModel:
        params = TrainingParams.of(PARAMS, random_state=seed, n_init=1)
        return fit_segmentation_model(sample, {"k": k, "source": "test"}, params, {"run_id": version})

    first = align_segment_ids(fit(3, 1, "v1"), None, sample)
    ds = dataset()
    ds.save(ModelVersionWrite(record=first.to_record(), run_id="v1"))
    stored_first = load_version(ds.load(), "v1")
    assert stored_first.ids() == first.ids() and list(stored_first.base_labels) == list(first.base_labels)

    refit = fit(4, 4, "v2")  # one cluster more: it gets a new id, the others keep theirs
    in_memory = align_segment_ids(refit, first, sample)
    from_table = align_segment_ids(refit, stored_first, sample)
    assert from_table.ids() == in_memory.ids() and from_table.labels == in_memory.labels
    assert sorted(from_table.ids()) == [0, 1, 2, 3] and from_table.metrics["identity"]["new_ids"] == [3]
    ds.save(ModelVersionWrite(record=from_table.to_record(), run_id="v2"))

    back = load_version(ds.load(), "v2")
    assert back.segment_ids == from_table.ids() and back.labels == from_table.labels
    assert list(back.base_labels) == list(from_table.base_labels)
    # the drift reference (bin edges, proportions, shares, distances) is stored exactly; NaN as null
    assert back.drift_reference == json.loads(json.dumps(json_safe(from_table.drift_reference)))
    assert (
        back.reference()["bins"]["RECENCY_DAYS"]["edges"]
        == from_table.drift_reference["bins"]["RECENCY_DAYS"]["edges"]
    )
    # MODEL_SEGMENTS is keyed by the stable ids, with each segment's own label and size
    rows = query(
        "SELECT SEGMENT_ID, LABEL, CUSTOMERS FROM MODEL_SEGMENTS WHERE MODEL_VERSION = 'v2' ORDER BY SEGMENT_ID"
    )
    sizes = np.bincount(from_table.predict(sample), minlength=4)
    expected = sorted(
        (i, label, int(sizes[p])) for p, (i, label) in enumerate(zip(from_table.ids(), from_table.labels))
    )
    assert [tuple(r) for r in rows] == expected
    # the daily job's "no retrain" request stores nothing
    before = counts(query)
    ds.save(ModelVersionWrite(record=None))
    assert counts(query) == before


def test_value_model_versions_follow_the_same_registry_rules(warehouse_session: Any, query: Any) -> None:
    """CUSTOMER_VALUE_MODELS on the shared registry base: exact round trip, re-save replaces, pruning
    keeps the newest and the active (newest READY) version, a FAILED version never scores."""
    from customer_segmentation.datasets.value_model_table import ValueModelTableDataset, ValueModelWrite
    from customer_segmentation.value_model import active_value_model
    from tests.test_value_model import make_model

    ds = ValueModelTableDataset(credentials={"database": "SEGMENTATION", "schema": "PUBLIC"})
    assert ds.load().empty and list(ds.load().columns)[:2] == ["VERSION", "TRAINED_AT"]

    def write(version: str, day: int, status: str = "READY", **kwargs: Any) -> ValueModelWrite:
        record = make_model(version, status).to_record()
        record["TRAINED_AT"] = f"2026-01-{day:02d}T10:00:00"
        return ValueModelWrite(record=record, run_id=f"run-{version}", **kwargs)

    ds.save(write("v1", 1))
    ds.save(write("v1", 1))  # the same version again: replaced, not doubled
    ds.save(write("v2", 2))
    loaded = ds.load()
    assert list(loaded["VERSION"]) == ["v2", "v1"] and list(loaded["RUN_ID"]) == ["run-v2", "run-v1"]
    back = active_value_model(loaded)
    assert back.version == "v2" and back.bgnbd == make_model("v2").bgnbd
    assert loaded["TRAINED_AT"].iloc[0] == "2026-01-02T10:00:00"
    ds.save(write("v3", 3, "FAILED", keep_versions=1))  # keeps v3 (newest) and v2 (active)
    assert list(ds.load()["VERSION"]) == ["v3", "v2"]
    assert active_value_model(ds.load()).version == "v2"
    ds.save(ValueModelWrite(record=None))  # nothing to store
    assert query("SELECT COUNT(*) FROM CUSTOMER_VALUE_MODELS")[0][0] == 2
    with pytest.raises(DatasetError, match="saves a ValueModelWrite, not ModelVersionWrite"):
        ds.save(ModelVersionWrite(record={}))
