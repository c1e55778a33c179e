"""The ``load_events`` parameters (conf/base/parameters_load_events.yml), validated before the run."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import StringConstraints, field_validator

from customer_segmentation.parameters import Parameters


class LoadEventsParams(Parameters):
    """How to read the events file (its path is the top-level parameter ``events_file``)."""

    section = "load_events"

    # csv | jsonl | parquet | xlsx (any case; json, ndjson and pq are accepted too); None = from the file name
    format: Literal["csv", "jsonl", "parquet", "xlsx"] | None = None
    # None = detected from the header (',', ';', tab or '|')
    csv_delimiter: Annotated[str, StringConstraints(min_length=1, max_length=1)] | None = None
    # CSV and JSON Lines text encoding (a UTF-8 byte-order mark is accepted); cp1252 / latin-1 for Excel exports
    encoding: Annotated[str, StringConstraints(min_length=1)] = "utf-8-sig"
    # decimal separator of CSV numbers; None = ',' for ';'-separated files, else '.'
    decimal: Literal[",", "."] | None = None
    # Excel: the sheet to read (name or 0-based position); None = the first
    sheet: str | int | None = None

    @field_validator("format", mode="before")
    @classmethod
    def _format_name(cls, value: Any) -> Any:
        if value is None or not str(value).strip():
            return None
        name = str(value).strip().lower().lstrip(".")
        return {"json": "jsonl", "ndjson": "jsonl", "pq": "parquet"}.get(name, name)

    @field_validator("csv_delimiter", mode="before")
    @classmethod
    def _delimiter(cls, value: Any) -> Any:
        if value is None or value == "":
            return None
        return {"tab": "\t", "\\t": "\t", "semicolon": ";", "comma": ",", "pipe": "|"}.get(str(value), value)
