"""The ``load_events`` parameters (conf/base/parameters_load_events.yml), validated before the run."""

from __future__ import annotations

from typing import Annotated

from pydantic import StringConstraints

from customer_segmentation.parameters import Parameters


class LoadEventsParams(Parameters):
    """How to read the events file (its path is the top-level parameter ``events_file``)."""

    section = "load_events"

    # csv | jsonl | parquet (json, ndjson and pq are accepted too); None = from the file name
    format: str | None = None
    csv_delimiter: Annotated[str, StringConstraints(min_length=1)] = ","
    # CSV and JSON Lines text encoding (a UTF-8 byte-order mark is accepted)
    encoding: Annotated[str, StringConstraints(min_length=1)] = "utf-8-sig"
