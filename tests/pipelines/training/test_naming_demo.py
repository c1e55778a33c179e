"""On the demo, after a full `kedro run`: every label is its members' plurality classic RFM segment
(or the spanning second), and the faithfulness share is reported in the metrics and the summary.

Checked with pandas on PROCESSED_DATA, independently of the naming code.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

from tests.conftest import warehouse_rows
from tests.pipelines.training.histories import check_naming

pytestmark = pytest.mark.integration


def latest(project: Path, name: str) -> Path:
    versions = sorted((project / "data" / "08_reporting" / name).iterdir())
    return versions[-1] / name


def test_demo_labels_follow_members_and_report_faithfulness(trained_project: Path) -> None:
    metrics = json.loads(latest(trained_project, "training_metrics.json").read_text())
    summary = pd.read_csv(latest(trained_project, "segment_summary.csv")).sort_values("SEGMENT_ID")
    columns = ["CUSTOMER_ID", "SEGMENT_ID", "SEGMENT_LABEL", "RFM_SEGMENT", *metrics["features"]]
    rows = warehouse_rows(
        trained_project, f"SELECT {', '.join(columns)} FROM PUBLIC.PROCESSED_DATA ORDER BY CUSTOMER_ID"
    )
    processed = pd.DataFrame(rows, columns=columns)
    for name in metrics["features"]:
        processed[name] = pd.to_numeric(processed[name]).astype(float)
    k = metrics["k"]
    assert len(summary) == k and summary["SEGMENT_LABEL"].is_unique
    assert metrics["customers_in_sample"] == len(
        processed
    )  # the demo is smaller than the sample: all customers

    # what the model saved, as reported: labels, base labels, stats, descriptions
    model = SimpleNamespace(
        k=k,
        labels=summary["SEGMENT_LABEL"].tolist(),
        base_labels=summary["BASE_LABEL"].tolist(),
        features=metrics["features"],
        log_features=metrics["log_features"],
        segment_stats=metrics["segments"],
        descriptions=summary["DESCRIPTION"].tolist(),
    )
    assert {s["label"]: s["base_label"] for s in model.segment_stats} == dict(
        zip(model.labels, model.base_labels)
    )
    # segments in summary order, matched by label (ids need not be 0..k-1)
    position = {label: n for n, label in enumerate(model.labels)}
    assert processed["SEGMENT_LABEL"].isin(position).all()
    table = check_naming(processed, processed["SEGMENT_LABEL"].map(position).to_numpy(), model)

    # the summary's faithfulness, computed in the warehouse from the scored rows, equals pandas
    assert summary["FAITHFUL_SHARE"].tolist() == pytest.approx(table["share"].tolist())
    expected = (
        processed["RFM_SEGMENT"] == processed["SEGMENT_LABEL"].map(dict(zip(model.labels, model.base_labels)))
    ).mean()
    assert metrics["naming"]["faithful_share"] == pytest.approx(expected)
    assert (processed.groupby("SEGMENT_ID")["SEGMENT_LABEL"].nunique() == 1).all()
