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
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from kedro.io.core import DatasetError

from customer_segmentation.datasets.model_table import (
    NEWEST_FIRST,
    _delete_in,
    _insert_rows,
    _iso,
    _json,
    _ts_text,
    versions_to_prune,
)
from customer_segmentation.datasets.snowpark import SnowparkTableDataset
from customer_segmentation.model import json_safe
from customer_segmentation.warehouse.tables import (
    create_table_sql,
    remember_table_columns,
    table_columns,
    transaction,
)

logger = logging.getLogger(__name__)

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
class ValueModelWrite:
    """A node's request to store one value-model version (``record``: ``ValueModel.to_record()``) and prune.

    ``record`` None: nothing to store (the active version was kept). ``keep_versions`` newest are
    kept, plus ``protect`` (the pinned version) and the active one (newest READY).
    """

    record: dict[str, Any] | None
    run_id: str | None = None
    keep_versions: int = 20
    protect: tuple[str, ...] = field(default_factory=tuple)
    registered_at: str | None = None


def _document(value: Any) -> str | None:
    """A PARAMS/METRICS value as strict JSON text (a dict is encoded; text is checked and kept)."""
    if value is None:
        return None
    if isinstance(value, str):
        json.loads(value)  # refuse text that Snowflake's PARSE_JSON would not read
        return value
    return _json(json_safe(value))


class ValueModelTableDataset(SnowparkTableDataset):
    """Customer-value model versions in CUSTOMER_VALUE_MODELS (see the module docstring)."""

    def __init__(self, *, table_name: str = "CUSTOMER_VALUE_MODELS", **kwargs: Any) -> None:
        super().__init__(table_name=table_name, **kwargs)

    def load(self) -> pd.DataFrame:
        session = self.session
        names = list(VALUE_MODEL_COLUMNS)
        if not table_columns(session, self._database, self._schema, self._table_name):
            return pd.DataFrame(columns=names)
        rows = session.sql(f"SELECT {', '.join(names)} FROM {self.fqn} ORDER BY {NEWEST_FIRST}").collect()
        records = []
        for row in rows:
            values = row.as_dict()
            record = {name: values[name] for name in names}
            record["TRAINED_AT"] = _iso(values["TRAINED_AT"])
            record["REGISTERED_AT"] = _iso(values["REGISTERED_AT"])
            records.append(record)
        return pd.DataFrame(records, columns=names)

    def save(self, data: ValueModelWrite) -> None:
        if not isinstance(data, ValueModelWrite):
            raise DatasetError(f"{type(self).__name__} saves a ValueModelWrite, not {type(data).__name__}.")
        if data.record is None:
            logger.info("No new customer-value model version to store in %s", self.fqn)
            return
        if int(data.keep_versions) < 1:
            raise DatasetError(f"keep_versions must be at least 1, got {data.keep_versions}.")
        record = {str(k).upper(): v for k, v in data.record.items()}
        version = str(record["VERSION"])
        row = {
            "VERSION": version,
            "TRAINED_AT": _ts_text(record["TRAINED_AT"]),
            "REGISTERED_AT": _ts_text(
                data.registered_at or datetime.now(UTC).replace(tzinfo=None).isoformat()
            ),
            "RUN_ID": data.run_id,
            "SEGMENTATION_MODEL_VERSION": (
                None
                if record.get("SEGMENTATION_MODEL_VERSION") is None
                else str(record["SEGMENTATION_MODEL_VERSION"])
            ),
            "STATUS": str(record.get("STATUS") or "READY"),
            "PARAMS": _document(record.get("PARAMS")),
            "METRICS": _document(record.get("METRICS")),
            "RECORD_FORMAT": RECORD_FORMAT,
        }
        session = self.session
        # DDL outside the transaction (DDL would commit it implicitly on Snowflake)
        if not table_columns(session, self._database, self._schema, self._table_name):
            session.sql(
                create_table_sql(self._database, self._schema, self._table_name, VALUE_MODEL_COLUMNS)
            ).collect()
            remember_table_columns(
                session, self._database, self._schema, self._table_name, list(VALUE_MODEL_COLUMNS)
            )
        with transaction(session):
            _delete_in(session, self.fqn, "VERSION", [version])
            _insert_rows(session, self.fqn, VALUE_MODEL_COLUMNS, [row])
            stored = session.sql(f"SELECT VERSION, STATUS FROM {self.fqn} ORDER BY {NEWEST_FIRST}").collect()
            drop = versions_to_prune(
                [(str(r[0]), str(r[1])) for r in stored], int(data.keep_versions), data.protect
            )
            _delete_in(session, self.fqn, "VERSION", drop)
        logger.info(
            "Customer-value model version %s stored in %s%s",
            version,
            self.fqn,
            f"; pruned {len(drop)} old version(s): {', '.join(drop)}" if drop else "",
        )

    def _exists(self) -> bool:
        try:
            return bool(table_columns(self.session, self._database, self._schema, self._table_name))
        except Exception as exc:  # pragma: no cover - exists() must not raise
            logger.debug("Could not check %s: %s", self.fqn, exc)
            return False
