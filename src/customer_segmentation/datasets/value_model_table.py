"""CUSTOMER_VALUE_MODELS: the customer-value model versions, beside SEGMENTATION_MODELS (same registry rules).

One row per version: VERSION, TRAINED_AT, REGISTERED_AT, RUN_ID, SEGMENTATION_MODEL_VERSION (the
segmentation model it was fitted next to), STATUS, PARAMS (fitted parameters, fit statistics and
settings, JSON text) and METRICS (the holdout report and the rest, JSON text). A save stores one
version and prunes old ones in ONE transaction (the table is created before it: DDL would commit
it on Snowflake), so a crash leaves the previous state or the new one; re-saving a version
replaces it. ``load()`` returns every version, newest first, as a pandas DataFrame with the
table's column names (PARAMS and METRICS as stored, JSON text), the rows
``value_model.ValueModel.from_record`` reads.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pandas as pd

from customer_segmentation.datasets.model_table import (
    RegistryTableDataset,
    VersionWrite,
    _json,
    _ts_text,
)
from customer_segmentation.model import json_safe

RECORD_FORMAT = 1
VALUE_MODEL_COLUMNS: dict[str, str] = {
    "VERSION": "VARCHAR NOT NULL",
    "TRAINED_AT": "TIMESTAMP_NTZ",
    "REGISTERED_AT": "TIMESTAMP_NTZ",
    "RUN_ID": "VARCHAR",
    "SEGMENTATION_MODEL_VERSION": "VARCHAR",
    "STATUS": "VARCHAR",
    "PARAMS": "VARCHAR",
    "METRICS": "VARCHAR",
    "RECORD_FORMAT": "NUMBER(38,0)",
}
DOCUMENTS = ("PARAMS", "METRICS")


@dataclass(frozen=True)
class ValueModelWrite(VersionWrite):
    """A node's request to store one value-model version (``record``: ``ValueModel.to_record()``, or a
    failed fit's FAILED record) and prune, by the registry rules of ``VersionWrite``."""


def _document(value: Any) -> str | None:
    """A PARAMS/METRICS value as strict JSON text (a dict is encoded; text is checked and kept)."""
    if value is None:
        return None
    if isinstance(value, str):
        json.loads(value)  # refuse text that Snowflake's PARSE_JSON would not read
        return value
    return _json(json_safe(value))


class ValueModelTableDataset(RegistryTableDataset):
    """Customer-value model versions in CUSTOMER_VALUE_MODELS (see the module docstring)."""

    write_type = ValueModelWrite
    columns = VALUE_MODEL_COLUMNS
    what = "customer-value model version"

    def __init__(self, *, table_name: str = "CUSTOMER_VALUE_MODELS", **kwargs: Any) -> None:
        super().__init__(table_name=table_name, **kwargs)

    def load(self) -> pd.DataFrame:
        stored = self._stored_rows()
        return pd.DataFrame(stored or [], columns=list(VALUE_MODEL_COLUMNS))

    def _rows(self, data: VersionWrite, registered_at: str) -> dict[str, list[dict[str, Any]]]:
        record = {str(k).upper(): v for k, v in (data.record or {}).items()}
        segmentation = record.get("SEGMENTATION_MODEL_VERSION")
        row = {
            "VERSION": str(record["VERSION"]),
            "TRAINED_AT": _ts_text(record["TRAINED_AT"]),
            "REGISTERED_AT": registered_at,
            "RUN_ID": data.run_id,
            "SEGMENTATION_MODEL_VERSION": None if segmentation is None else str(segmentation),
            "STATUS": str(record.get("STATUS") or "READY"),
            "PARAMS": _document(record.get("PARAMS")),
            "METRICS": _document(record.get("METRICS")),
            "RECORD_FORMAT": RECORD_FORMAT,
        }
        return {self._table_name: [row]}
