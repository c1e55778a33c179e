"""The model table on the live target (a real account when SNOWFLAKE_ACCOUNT is set, else embedded).

Snowflake types only, JSON text readable with PARSE_JSON, version choice and rollback by parameter,
timestamps independent of the session's output formats.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.snowflake.conftest import Target
from tests.snowflake.test_live import _history

pytestmark = [pytest.mark.snowflake, pytest.mark.integration]

#: INFORMATION_SCHEMA.COLUMNS.DATA_TYPE of the types the tables use (VARCHAR is TEXT, DOUBLE is FLOAT).
SNOWFLAKE_TYPES = {"TEXT", "NUMBER", "FLOAT", "BOOLEAN", "TIMESTAMP_NTZ"}
TABLES = ("SEGMENTATION_MODELS", "MODEL_K_SELECTION", "MODEL_SEGMENTS", "SEGMENT_SUMMARY")


@pytest.mark.slow
def test_model_versions_on_the_target(
    target: Target, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _history(tmp_path / "history.csv")
    target.run(monkeypatch, "load_events", events_file=str(tmp_path / "history.csv"))
    target.run(monkeypatch, **{"training.k": 3})  # trains version 1 and scores with it
    target.run(monkeypatch, "training", **{"training.k": 4})  # version 2
    t = target.table
    versions = target.sql(
        f"SELECT VERSION, K, STATUS FROM {t('SEGMENTATION_MODELS')} ORDER BY TRAINED_AT, REGISTERED_AT"
    )
    assert [(v[1], v[2]) for v in versions] == [(3, "READY"), (4, "READY")]
    first, second = versions[0][0], versions[1][0]

    database = target.env.get("SNOWFLAKE_DATABASE", "SEGMENTATION")
    names = ", ".join(f"'{name}'" for name in TABLES)
    types = target.sql(
        f"SELECT TABLE_NAME, COLUMN_NAME, DATA_TYPE FROM {database}.INFORMATION_SCHEMA.COLUMNS "
        f"WHERE TABLE_SCHEMA = '{target.schema}' AND TABLE_NAME IN ({names})"
    )
    assert {r[0] for r in types} == set(TABLES)
    assert {r[2] for r in types} <= SNOWFLAKE_TYPES, sorted(
        {(r[1], r[2]) for r in types if r[2] not in SNOWFLAKE_TYPES}
    )

    # SQL alone reads the stored documents (docs/model-registry.md)
    k_rows = target.sql(
        f"SELECT ARRAY_SIZE(PARSE_JSON(CENTROIDS)), ARRAY_SIZE(PARSE_JSON(LABELS)), "
        f"PARSE_JSON(METRICS):k::NUMBER FROM {t('SEGMENTATION_MODELS')} WHERE VERSION = '{second}'"
    )
    assert [tuple(int(x) for x in r) for r in k_rows] == [(4, 4, 4)]
    chosen = target.sql(
        f"SELECT K FROM {t('MODEL_K_SELECTION')} WHERE MODEL_VERSION = '{first}' AND IS_CHOSEN"
    )
    assert [int(r[0]) for r in chosen] == [3]

    # the newest scores by default; a pin rolls back; an unknown pin lists what exists
    target.run(monkeypatch, "prediction")
    target.run(monkeypatch, "store_results")
    assert target.sql(f"SELECT DISTINCT MODEL_VERSION FROM {t('PROCESSED_DATA')}") == [(second,)]
    target.run(monkeypatch, "daily", **{"prediction.model_version": first})
    assert target.sql(f"SELECT DISTINCT MODEL_VERSION FROM {t('PROCESSED_DATA')}") == [(first,)]
    (segments,) = target.sql(f"SELECT COUNT(DISTINCT SEGMENT_ID) FROM {t('PROCESSED_DATA')}")[0]
    assert segments <= 3
    with pytest.raises(Exception) as excinfo:
        target.run(monkeypatch, "prediction", **{"prediction.model_version": "no-such-version"})
    assert first in str(excinfo.value) and second in str(excinfo.value)


def test_loaded_model_ignores_session_timestamp_formats(target: Target, live_session: Any) -> None:
    from customer_segmentation.datasets import ModelVersionWrite, SegmentationModelTableDataset
    from customer_segmentation.model import SegmentationModel, active_version, load_version

    model = SegmentationModel(
        features=["A", "B"],
        log_features=["A"],
        means=np.array([0.1, 1 / 3]),
        scales=np.array([2.0, 1e-300]),
        centroids=np.array([[0.5, -1 / 7], [-0.5, 2.0**-40]]),
        labels=["x", "y"],
        descriptions=["dx", "dy"],
        version="v-live",
        trained_at="2026-11-01T05:06:07",
    )
    dataset = SegmentationModelTableDataset(
        credentials={"schema": target.schema, "database": target.env.get("SNOWFLAKE_DATABASE")}
    )
    dataset.save(ModelVersionWrite(record=model.to_record(), run_id="r"))
    live_session.sql(
        "ALTER SESSION SET TIMESTAMP_OUTPUT_FORMAT = 'DY, DD MON YYYY HH24:MI', TIMESTAMP_NTZ_OUTPUT_FORMAT = 'MM/DD/YY'"
    ).collect()
    versions = dataset.load()
    back = load_version(versions, active_version(versions))
    assert back.trained_at == "2026-11-01T05:06:07"
    for name in ("means", "scales", "centroids"):  # bit-for-bit through the account's VARCHAR
        assert np.array_equal(getattr(model, name).view(np.int64), getattr(back, name).view(np.int64))
