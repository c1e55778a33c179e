"""The ``load_events`` parameters (conf/base/parameters_load_events.yml), validated before the run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import StringConstraints, field_validator

from customer_segmentation.parameters import Parameters


class LoadEventsParams(Parameters):
    """How to read the events file (its path is the top-level parameter ``events_file``)."""

    section = "load_events"

    # csv | jsonl | parquet (any case; json, ndjson and pq are accepted too); None = from the file name
    format: Literal["csv", "jsonl", "parquet"] | None = None
    csv_delimiter: Annotated[str, StringConstraints(min_length=1)] = ","
    # CSV and JSON Lines text encoding (a UTF-8 byte-order mark is accepted)
    encoding: Annotated[str, StringConstraints(min_length=1)] = "utf-8-sig"

    @field_validator("format", mode="before")
    @classmethod
    def _format_name(cls, value: Any) -> Any:
        if value is None or not str(value).strip():
            return None
        name = str(value).strip().lower().lstrip(".")
        return {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(name, name)
